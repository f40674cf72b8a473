"""The embedded provider: the case type's deterministic analyzer, no network."""

from __future__ import annotations

from dataclasses import asdict

from app.ai.providers.base import ProviderRequest, ProviderResponse


class LocalProvider:
    name = "local"
    private = True

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        analysis = request.case_type.analyze(request.case_type.validate_data(request.data))
        output = asdict(analysis)
        output.pop("risk_score")
        return ProviderResponse(output=output, model=request.model)

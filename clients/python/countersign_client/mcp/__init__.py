"""Countersign for agents that reach their tools through the Model Context Protocol (the optional
extra ``countersign-client[mcp]``): ``countersign-mcp``, an MCP server whose ``request_approval``
tool asks a human reviewer about a tool call (`server`), and ``countersign-mcp-gateway``, an MCP
proxy that runs the guarded tools of another MCP server only once a reviewer approved the call
(`gateway`). See docs/mcp.md."""

"""Oversight of the humans and the models: confidence calibrated from reviewers' decisions, and
QA sampling of approved decisions for a senior reviewer's second look."""

"""The HTTP layer: errors and their one shape, responses, body and connection limits, the
client IP, CORS, CSRF, cookies, the OpenAPI document and the docs page."""

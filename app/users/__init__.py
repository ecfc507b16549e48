"""User management through the Auth0 Management API: sign-up, self-service, admin."""

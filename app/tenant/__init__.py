"""Tenant set-up as code: the desired state of an environment's Auth0 tenant, provision, doctor.

- :mod:`app.tenant.spec`: what the design note asks of a tenant, as data (one list of
  requirements that provisioning enforces and the doctor checks);
- :mod:`app.tenant.config`: where ``gateway provision`` reads its inputs and credentials;
- :mod:`app.tenant.provision`: plan the changes, print them, apply them;
- :mod:`app.tenant.doctor`: check a tenant with the gateway's own credentials, and live;
- :mod:`app.tenant.commands`: the ``gateway provision`` and ``gateway doctor`` commands.
"""

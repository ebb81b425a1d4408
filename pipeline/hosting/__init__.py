"""Host a private registry: `release registry up / down / gc / compose`.

    files.py     the bcrypt htpasswd file and the self-signed certificate
    deploy.py    RegistryOptions (what the user asked for, and its checks) -> Deployment:
                 containers, env, mounts, labels (pure data, no Docker)
    engine.py    Deployment -> containers through the Docker SDK (idempotent), down, gc
    compose.py   Deployment -> docker-compose.yml (pipeline/templates/docker-compose.yml.j2)

Everything is configured the way the official `registry:2` image expects it: REGISTRY_*
environment variables and mounts at /var/lib/registry, /auth and /certs, so the same
command drives the real image and the stand-in the tests build.
"""

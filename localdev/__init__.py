"""Local development world: tenant simulator, Azurite runner, local Functions host, demo.

Never deployed (see .funcignore); the app's runtime code lives in `shared/` and `functions/`.
"""

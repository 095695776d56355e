"""The HTTP edge: Starlette app, routes, wire types and the error table."""

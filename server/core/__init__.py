"""Serving without HTTP (imports no litestar): the gateway, admission, keys,
budgets, hot reload and the retry guard."""

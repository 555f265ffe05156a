"""The playground: run a prompt through a route and watch it stream, fallbacks included.

`pages` has the handlers; a run's token is `tokens`, its simulated failures `simulate`,
its events shown as HTML `render`, and the run itself, from spec to stream, `run`.
"""

from server.dashboard.playground.pages import HANDLERS
from server.dashboard.playground.simulate import simulated_table
from server.dashboard.playground.tokens import RunSpec, TokenBook

__all__ = ["HANDLERS", "RunSpec", "TokenBook", "simulated_table"]

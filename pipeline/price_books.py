"""Price book resolution: the declared fallback order. A line's event is priced by the book of its plan that
matches its agent, service state and service; when several match, the first level of ``FALLBACK_ORDER`` wins
(the most specific book), e.g. agent+plan+state → plan+state → plan."""

from __future__ import annotations

import polars as pl

# the scopes a price book can have besides its plan, most specific first; every combination is listed, so every
# book has exactly one level. Agent before state before service: an agent's negotiated book beats a state book.
FALLBACK_ORDER: tuple[tuple[str, ...], ...] = (
    ("agent", "state", "service"),
    ("agent", "state"),
    ("agent", "service"),
    ("agent",),
    ("state", "service"),
    ("state",),
    ("service",),
    (),
)


def price_book_levels() -> pl.DataFrame:
    """The fallback order as a table (level 1 = most specific) for the rating SQL to join price books to."""
    return pl.DataFrame(
        {
            "level": list(range(1, len(FALLBACK_ORDER) + 1)),
            "level_name": [
                "+".join(("agent", "plan", *scope[1:]) if "agent" in scope else ("plan", *scope))
                for scope in FALLBACK_ORDER
            ],
            "with_agent": ["agent" in scope for scope in FALLBACK_ORDER],
            "with_state": ["state" in scope for scope in FALLBACK_ORDER],
            "with_service": ["service" in scope for scope in FALLBACK_ORDER],
        }
    )

"""The fan-out over a cycle's market shards inside the cycle's run (docs/SCALE_LOG.md, "Scale-out"): one step
lists the shards (settings ``market_shards`` / ``market_by``), one step per shard does the stage's work for
its accounts (any executor may run it anywhere: in this process, a subprocess, its own Kubernetes pod), and
one collect step writes the cycle's partition."""

import re

import dagster as dg

from assets.resources import CdrbillHome
from pipeline.shards import Shard, market_shards, shard_by_key


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.DynamicOut(str))
def cycle_market_shards(context: dg.OpExecutionContext, cdrbill: CdrbillHome):
    """The cycle's market shards, one dynamic output each (its key)."""
    for shard in market_shards(cdrbill.settings(), cdrbill.reference().accounts):
        yield dg.DynamicOutput(shard.key, mapping_key=mapping_key(shard.key))


def mapping_key(key: str) -> str:
    """A shard key as a Dagster mapping key (letters, digits, underscores)."""
    return "shard_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def shard_of(cdrbill: CdrbillHome, key: str) -> Shard:
    """The shard a step was given by its key."""
    return shard_by_key(cdrbill.settings(), cdrbill.reference().accounts, key)


def all_shards(cdrbill: CdrbillHome, keys: list[str]) -> list[Shard]:
    """The shards the fan-out ran, in the order of the cycle's shards (a collect step gets them in any order)."""
    done = set(keys)
    shards = [shard for shard in market_shards(cdrbill.settings(), cdrbill.reference().accounts)]
    missing = [shard.key for shard in shards if shard.key not in done]
    if missing:
        raise ValueError(f"market shards {missing} did not run. Fix: run the cycle again")
    return shards

"""The registry of components: each one's name, its target block and its flow parameter.

One place to add a component (with its engine adapter under scholar_ops/sources
and its block): flows, tasks, metrics and the command line read it from here.
Importing this module imports no Prefect (the command line builds its options
from it); the block classes are imported when first asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from scholar_ops.vault.errors import ConfigError

if TYPE_CHECKING:
    from blocks.base import TargetBlock


@dataclass(frozen=True)
class Component:
    name: str  # in snapshots, metrics and the command line
    title: str  # for people
    block: str  # "module:Class" of its target block
    flow_parameter: str  # the backup and drill flows' parameter listing its target blocks

    def block_class(self) -> type[TargetBlock]:
        module, _, cls = self.block.partition(":")
        found: type[TargetBlock] = getattr(importlib.import_module(module), cls)
        return found

    def load(self, name: str) -> TargetBlock:
        """The saved target block ``name`` (a ConfigError that says how to create it)."""
        try:
            return self.block_class().load_sync(name)
        except ValueError as e:
            raise ConfigError(
                f"cannot load the {self.title} target block {name!r}: {e}. Create it with "
                "`scholar-ops setup`"
            ) from None


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("postgres", "PostgreSQL", "blocks.postgres:PostgresTarget", "postgres_targets"),
        Component(
            "postgres-base",
            "PostgreSQL cluster (base backup)",
            "blocks.postgres:PostgresClusterTarget",
            "postgres_base_targets",
        ),
        Component("redis", "Redis", "blocks.redis:RedisTarget", "redis_targets"),
        Component("chroma", "Chroma", "blocks.chroma:ChromaTarget", "chroma_targets"),
        Component("files", "files", "blocks.files:FilesTarget", "file_targets"),
    )
}
COMPONENT_NAMES = tuple(COMPONENTS)


def component(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown component {name!r}: one of {', '.join(COMPONENT_NAMES)}"
        ) from None


def load_target(component_name: str, block_name: str) -> TargetBlock:
    return component(component_name).load(block_name)


T = TypeVar("T", bound="TargetBlock")


def load_block(cls: type[T], block_name: str) -> T:
    """The saved target block ``block_name`` of the class ``cls`` (typed)."""
    block = component(cls.component).load(block_name)
    assert isinstance(block, cls)
    return block

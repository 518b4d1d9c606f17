"""Base model for everything that crosses a process boundary: camelCase on the wire, strict fields."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Frozen, unknown-field-rejecting model that reads and writes camelCase.

    Python code uses snake_case attributes; `dump()` gives the wire form. Unknown fields are
    rejected so that a producer's typo is an error at the boundary, not a silently lost value.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def dump(self) -> dict[str, object]:
        """The wire form: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

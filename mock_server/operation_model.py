"""What an operation is: the data every entry of the operation table carries, and what it makes.

Kept apart from the table (``operations``) so that the modules holding the operations'
``check`` and ``produce`` functions can build entries without importing the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mock_server.config import Settings
    from mock_server.inputs import InputImage

ALL_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
EDIT_PREFIX = "/v2/image/edit/"
EXAMPLE_IMAGE = "<example image>"
"""Placeholder in an operation's ``example``: replaced by the image the example is built with."""

Options = dict[str, Any]
Inputs = Mapping[str, "InputImage"]  # field (``image``, ``ref_images[1]``) -> its checked image
DecodeSizes = Mapping[str, tuple[int, int]]  # field -> the size its image is needed at, at least


@dataclasses.dataclass(frozen=True)
class Output:
    """What an operation made: the result image (PNG; None when it makes none) and the result's other fields."""

    image: bytes | None
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _no_input_check(options: Mapping[str, Any], inputs: Inputs) -> None:
    return None


def _full_sizes(options: Mapping[str, Any], inputs: Inputs) -> DecodeSizes:
    return {}


@dataclasses.dataclass(frozen=True)
class Operation:
    """One API operation: how it is reached, checked, and what it makes."""

    name: str  # the endpoint name rules, the journal and reports use
    path: str
    summary: str
    check: Callable[[Options, Settings], None]
    produce: Callable[[Mapping[str, Any], Inputs], Output]
    # A valid request (``EXAMPLE_IMAGE`` where an image goes): for /openapi.json and tests.
    example: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"image": EXAMPLE_IMAGE})
    image_fields: tuple[str, ...] = ("image",)  # fields whose values are images (a string or a list of them)
    formats: Callable[[Settings], frozenset[str]] = lambda settings: ALL_FORMATS
    billable: bool = True
    method: str = "POST"
    # Runs on the checked input images before a job is accepted (their sizes are known, their
    # pixels not decoded): mask and geometry rules that need the images' sizes raise here.
    check_inputs: Callable[[Mapping[str, Any], Inputs], None] = _no_input_check
    sync_allowed: bool = True  # False: the spec offers async only; ``sync: true`` is answered 202
    # Fields whose valid values depend on each other or on the images (geometry, exactly-one-of rules
    # outside the schema): the contract suite's properties take them from ``example`` instead of
    # drawing them from the schema alone.
    constrained_fields: tuple[str, ...] = ()
    # The size (at least) each input is needed at, for the request: an input not named is decoded
    # whole. ``produce`` opens its inputs at these sizes; the pixel budgets count them.
    decode_sizes: Callable[[Mapping[str, Any], Inputs], DecodeSizes] = _full_sizes

    @property
    def request_schema(self) -> str:
        return f"{self.name}.request"

    @property
    def result_schema(self) -> str:
        """The schema of the sync call's 200 answer."""
        return f"{self.name}.200"

    def decoded_pixels(self, options: Mapping[str, Any], inputs: Inputs) -> int:
        """The pixels this request's images decode to, together (at the sizes ``decode_sizes`` allows)."""
        if self.decode_sizes is _full_sizes:  # (most operations: the submit path's common case, kept short)
            return sum([image.decoded_pixels() for image in inputs.values()])
        sizes = self.decode_sizes(options, inputs)
        return sum([image.decoded_pixels(sizes.get(field)) for field, image in inputs.items()])

    def example_request(self, image: str) -> dict[str, Any]:
        """A valid request for this operation with ``image`` wherever its example takes an image."""
        return {field: _with_image(value, image) for field, value in self.example.items()}

    def images_in(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The image values of a request as ``(field, value)``: a list field gives ``field[i]``."""
        found: list[tuple[str, str]] = []
        for field in self.image_fields:
            value = options.get(field)
            if isinstance(value, str):
                found.append((field, value))
            elif isinstance(value, list):
                found.extend((f"{field}[{index}]", item) for index, item in enumerate(value))
        return found


def _with_image(value: Any, image: str) -> Any:
    if value == EXAMPLE_IMAGE:
        return image
    if isinstance(value, list):
        return [_with_image(item, image) for item in value]
    return value

"""Small types shared by the engines and the decorators."""

from typing import Literal

ReturnType = Literal["result", "state"]

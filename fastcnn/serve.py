"""Placeholder: the draw-a-digit page (fastcnn serve) lands in the next commit."""


def add_parser(commands: object) -> None:
    pass

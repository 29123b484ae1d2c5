"""Helpers for the book's prose: the one data note every chapter shows near its top, and
phrases chosen by the numbers a chapter computed.  Nothing here trains or measures.

* :func:`data_note` says, once, which data a chapter runs on.  When ``load("auto")`` fell
  back to the synthetic set, the note says so plainly and tells how to get the real
  Wikipedia files; with the real files it names them and claims nothing synthetic.
* :func:`phrase` picks the words a sentence may use from a condition computed in the same
  cell (for ``glue(name, phrase(...))`` and ``{glue:md}`name``` in the text), so that a
  claim such as "falls" or "barely better than chance" is only printed when the numbers
  support it.
* :func:`data_words` and :func:`data_title` name the data in running text and in figure
  titles ("Wikipedia", or words that say SYNTHETIC).
"""

from __future__ import annotations

from ..data import CrossModalDataset


class Markdown:
    """Text that Jupyter shows as Markdown and ``repr`` gives as is (no quotes), so it can
    be displayed, or glued and pasted with ``{glue:md}`` or ``{glue:text}``."""

    def __init__(self, text: str):
        self.text = str(text)

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Markdown) and other.text == self.text

    __hash__ = None  # type: ignore[assignment]

#: How a reader gets the real data set; the same words in every chapter's note.
GET_REAL_DATA = (
    "To run it on the real Wikipedia pairs (Rasiwasia et al., 2010; about 1.3 MB), fetch "
    "them with `python -m ugach_core data prepare wikipedia --download`, or point "
    "`UGACH_DATA` at a folder that holds the release files (`raw_features.mat`, "
    "`trainset_txt_img_cat.list`, `testset_txt_img_cat.list`, in it or in its "
    "`wikipedia/` subfolder), and run the chapter again."
)


def data_note(data: CrossModalDataset) -> Markdown:
    """The chapter's data note, as Markdown to display below the cell that loads the data.

    ``data``: what ``ugach_core.load("auto")`` returned.  For a synthetic set the note
    starts with "SYNTHETIC DATA" and says how to get the real one (:data:`GET_REAL_DATA`);
    for real data it names the set and its protocol.
    """
    if data.synthetic:
        return Markdown(
            f"> **SYNTHETIC DATA.** The Wikipedia files were not found, so this chapter runs "
            f"on the book's embedded synthetic data set (`{data.source}`: {data.n:,} "
            f"made-up pairs, {data.labels.shape[1]} labels). Every number, table and figure "
            f"computed from it below describes that synthetic set, not Wikipedia. "
            f"{GET_REAL_DATA}")
    what = "the Wikipedia set (Rasiwasia et al., 2010)" if data.name == "wikipedia" \
        else f"`{data.name}`"
    protocol = f" Protocol: {data.protocol}." if data.protocol else ""
    return Markdown(f"> **Data:** {what}, real data: {data.n:,} image-text pairs, "
                    f"{data.labels.shape[1]} labels, read from the official release "
                    f"files.{protocol}")


def data_words(data: CrossModalDataset) -> Markdown:
    """The data set's name for running text: "Wikipedia" or "the SYNTHETIC data"."""
    if data.synthetic:
        return Markdown("the SYNTHETIC data")
    return Markdown("Wikipedia" if data.name == "wikipedia" else f"`{data.name}`")


def data_title(data: CrossModalDataset) -> str:
    """The data set's name for figure titles: "Wikipedia" or "SYNTHETIC data"."""
    if data.synthetic:
        return "SYNTHETIC data"
    return "Wikipedia" if data.name == "wikipedia" else data.name


def phrase(condition: bool, yes: str, no: str) -> Markdown:
    """``yes`` when ``condition`` holds, else ``no``: the words the numbers support.

    Used as ``glue("name", phrase(a < b, "falls", "does not fall"), display=False)`` with
    ``{glue:md}`name``` in the text; the condition is computed from the numbers the
    sentence is about, in the cell that glues it.
    """
    return Markdown(yes if bool(condition) else no)


__all__ = ["GET_REAL_DATA", "Markdown", "data_note", "data_title", "data_words", "phrase"]

"""Trusted documents: the frontend's operations (graphql/operations/) by id, and, when
``api_trusted_documents_only`` is on, only those.

A client may send ``documentId`` instead of ``query`` (POST body or GET parameter):
``sha256:<hex of the file's text>`` or the operation's file name (``TopAds``). A GET
with a document id and variables is a short URL a CDN or browser can cache. With
trusted documents only, production refuses every other document (DOCUMENT_NOT_TRUSTED),
so nobody can send the API an expensive document the frontend never asks.

Documents compare by their printed syntax tree (graphql-core's print_ast), so a client
that sends an operation's text reformatted still matches it. The check is a validation
rule: it holds for HTTP and WebSocket alike, and the validation cache runs it once per
distinct document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cross_web import HTTPException

from adclick.api.errors import ApiErrorCode
from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse, print_ast


class UnknownDocument(HTTPException):
    """A documentId that names no trusted document."""

    def __init__(self, document_id: str) -> None:
        super().__init__(400, f"no trusted document has the id {document_id[:100]!r}")


@dataclass(frozen=True)
class TrustedDocuments:
    by_id: dict[str, str]  # "sha256:<hex>" and file names -> document text
    printed: frozenset[str]  # each document's print_ast

    @classmethod
    def load(cls, directory: Path) -> TrustedDocuments:
        by_id = {}
        for path in sorted(directory.glob("*.graphql")):
            text = path.read_text()
            by_id[f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"] = text
            by_id[path.stem] = text
        return cls(by_id, frozenset(print_ast(parse(text)) for text in by_id.values()))

    def resolve(self, data: Any) -> Any:
        """A request's JSON (or GET parameters) with a ``documentId`` replaced by the
        document's text as ``query``."""
        if not isinstance(data, dict) or "documentId" not in data:
            return data
        document_id = data["documentId"]
        if not isinstance(document_id, str) or document_id not in self.by_id:
            raise UnknownDocument(str(document_id))
        resolved = {k: v for k, v in data.items() if k != "documentId"}
        resolved["query"] = self.by_id[document_id]
        return resolved

    def rule(self) -> type[ASTValidationRule]:
        """A validation rule refusing every document not trusted."""
        printed = self.printed

        class OnlyTrustedDocuments(ASTValidationRule):
            def enter_document(self, node: DocumentNode, *_: Any) -> None:
                if print_ast(node) not in printed:
                    self.report_error(
                        GraphQLError(
                            "this server answers only its trusted documents "
                            "(graphql/operations/): send one, by its text or its documentId",
                            node,
                            extensions={"code": ApiErrorCode.DOCUMENT_NOT_TRUSTED.value},
                        )
                    )

        return OnlyTrustedDocuments

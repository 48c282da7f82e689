"""Which ad-hoc SQL the job's admin port runs: one read-only statement, nothing that leaves
the store.

The admin client also runs with `readonly=1`, so ClickHouse itself refuses writes,
DDL, `SET` and table functions; this check is the first of the two fences and the
one that gives a clear answer. It reads the statement as tokens (comments, string
literals, `$$heredoc$$` ones too, and quoted identifiers are skipped as units, so a
keyword hidden in a string does not count and one behind a comment is still seen)
and refuses:

- anything but `SELECT`, `WITH`, `SHOW`, `DESCRIBE`/`DESC`, `EXPLAIN`, `EXISTS`;
- more than one statement;
- a function that reads files, URLs, object stores, other servers or programs
  (`file(...)`, `url(...)`, `s3(...)`, `remote(...)`, `mysql(...)`, ...);
- `INTO OUTFILE`, and a `SETTINGS` clause (the limits are not the caller's to lift).

>>> refusal("SELECT type, count() FROM mailflow.events GROUP BY type") is None
True
>>> refusal("select 'file(' as x -- file(") is None
True
>>> refusal("DROP TABLE mailflow.events")
'only one read-only statement is accepted (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS), not DROP'
>>> refusal("SELECT * FROM /* x */ FILE ('/etc/passwd')")
"refused: FILE(...) reads or writes outside the store's tables"
>>> refusal("SELECT 1; DROP TABLE t")
'one statement at a time'
"""

from __future__ import annotations

import re

READ_ONLY_STATEMENTS = frozenset({"select", "with", "show", "describe", "desc", "explain",
                                  "exists"})

#: Table functions that reach outside the store (files, URLs, object stores, other
#: servers, programs, the request body). Compared in lower case.
OUTSIDE_FUNCTIONS = frozenset(name.lower() for name in (
    "file", "fileCluster", "url", "urlCluster", "s3", "s3Cluster", "gcs", "oss", "cosn",
    "hdfs", "hdfsCluster", "remote", "remoteSecure", "cluster", "clusterAllReplicas",
    "mysql", "postgresql", "jdbc", "odbc", "mongodb", "sqlite", "redis", "input",
    "executable", "azureBlobStorage", "azureBlobStorageCluster", "hive", "arrowFlight",
    "arrowflight", "ytsaurus", "dictionary",
    # chDB: reads Python objects (data frames, dicts) of this process by variable name
    "python",
))
#: Families with many members (icebergS3, deltaLakeAzure, hudiCluster, paimonLocal, ...).
OUTSIDE_PREFIXES = ("iceberg", "deltalake", "hudi", "paimon", "s3", "azure", "hdfs",
                    "remote", "mysql", "postgres", "mongo", "url", "file")
#: Scalar functions whose names share a prefix above but touch nothing outside.
HARMLESS = frozenset({"urlhierarchy", "urlpathhierarchy"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\]|\\.|'')*(?:'|\Z)|\$(?P<tag>[A-Za-z0-9_]*)\$.*?(?:\$(?P=tag)\$|\Z))
  | (?P<quoted>"(?:[^"\\]|\\.|"")*(?:"|\Z)|`(?:[^`\\]|\\.|``)*(?:`|\Z))
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, text) of each token, without spaces and comments; quoted identifiers
    are unquoted and count as words.

    >>> tokens("SELECT `file`(1) -- x")
    [('word', 'SELECT'), ('word', 'file'), ('other', '('), ('other', '1'), ('other', ')')]
    >>> tokens("SELECT $q$it's$q$, 1")
    [('word', 'SELECT'), ('string', "$q$it's$q$"), ('other', ','), ('other', '1')]
    """
    out = []
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind in ("space", "comment"):
            continue
        if kind == "quoted":
            kind, text = "word", text[1:-1] if len(text) > 1 else ""
        out.append((kind, text))  # type: ignore[arg-type]
    return out


def _outside(name: str) -> bool:
    lowered = name.lower()
    if lowered in HARMLESS:
        return False
    return lowered in OUTSIDE_FUNCTIONS or lowered.startswith(OUTSIDE_PREFIXES)


def refusal(sql: str) -> str | None:
    """Why `sql` is refused, or None if it may run (see the module docstring)."""
    toks = tokens(sql)
    while toks and toks[-1] == ("other", ";"):
        toks.pop()
    if not toks:
        return "send one SQL query"
    if ("other", ";") in toks:
        return "one statement at a time"
    first = next((text for kind, text in toks if kind != "other" or text != "("), "")
    if first.lower() not in READ_ONLY_STATEMENTS:
        return ("only one read-only statement is accepted (SELECT, WITH, SHOW, DESCRIBE, "
                f"EXPLAIN, EXISTS), not {first[:40]}")
    for i, (kind, text) in enumerate(toks):
        if kind != "word":
            continue
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if following == "(" and _outside(text):
            return f"refused: {text}(...) reads or writes outside the store's tables"
        lowered = text.lower()
        if lowered == "into" and following.lower() == "outfile":
            return "refused: INTO OUTFILE writes a file"
        if lowered == "settings" and (i == 0 or toks[i - 1][1] != "."):
            return "refused: SETTINGS (the admin port's limits cannot be changed per query)"
    return None

"""What a database needs from its cluster, backed up with it and put back on a new server.

A pg_dump of one database leaves out the cluster-wide objects it relies on: the roles
that own its objects or hold grants on it (with their attributes, memberships and
settings), the database's own owner, privileges and settings. Restoring into a new,
empty cluster then fails on the first ``ALTER ... OWNER TO`` (issue 12). This module:

- at backup time, inside the dump's snapshot transaction, collects those roles (every
  role the database references, closed over memberships in both directions) into one
  record, stored encrypted as a snapshot entry (never in the snapshot's details, which
  are shown to operators: password hashes are secrets);
- at restore time, compares them with the target cluster and, per ``--roles``:
  ``create`` makes the missing ones (never altering one that exists), ``skip`` creates
  none (ownership and grants are then left out when a role is missing), ``fail`` stops
  before anything is written, naming the missing roles;
- names the extensions the target server lacks, in one error, before anything is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

log = logging.getLogger("scholar_ops.sources.postgres")

ROLES_ENTRY = "cluster/roles.json"
RolesMode = Literal["create", "skip", "fail"]
ROLES_MODES: tuple[RolesMode, ...] = ("create", "skip", "fail")

_USER_NS = """n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"""

# Every role a database refers to: owners, grantees of every ACL, policy roles, roles with
# settings in this database. PUBLIC (grantee 0) and the predefined pg_* roles are left out.
_REFERENCED = f"""
WITH refs(oid) AS (
    SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_NS}
    UNION SELECT (aclexplode(c.relacl)).grantee FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relacl IS NOT NULL AND {_USER_NS}
    UNION SELECT (aclexplode(a.attacl)).grantee FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attacl IS NOT NULL AND {_USER_NS}
    UNION SELECT n.nspowner FROM pg_namespace n WHERE {_USER_NS}
    UNION SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace n
        WHERE n.nspacl IS NOT NULL AND {_USER_NS}
    UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER_NS}
    UNION SELECT (aclexplode(p.proacl)).grantee FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proacl IS NOT NULL AND {_USER_NS}
    UNION SELECT t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_USER_NS}
    UNION SELECT (aclexplode(t.typacl)).grantee FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typacl IS NOT NULL AND {_USER_NS}
    UNION SELECT lomowner FROM pg_largeobject_metadata
    UNION SELECT (aclexplode(lomacl)).grantee FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
    UNION SELECT defaclrole FROM pg_default_acl
    UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
    UNION SELECT unnest(polroles) FROM pg_policy
    UNION SELECT collowner FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {_USER_NS}
    UNION SELECT oprowner FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {_USER_NS}
    UNION SELECT cfgowner FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE {_USER_NS}
    UNION SELECT dictowner FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE {_USER_NS}
    UNION SELECT evtowner FROM pg_event_trigger
    UNION SELECT fdwowner FROM pg_foreign_data_wrapper
    UNION SELECT srvowner FROM pg_foreign_server
    UNION SELECT umuser FROM pg_user_mappings
    UNION SELECT pubowner FROM pg_publication
    UNION SELECT datdba FROM pg_database WHERE datname = current_database()
    UNION SELECT (aclexplode(datacl)).grantee FROM pg_database
        WHERE datname = current_database() AND datacl IS NOT NULL
    UNION SELECT setrole FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database()
)
SELECT DISTINCT oid FROM refs WHERE oid <> 0
"""

_ATTRIBUTES = (
    "SUPERUSER",
    "INHERIT",
    "CREATEROLE",
    "CREATEDB",
    "LOGIN",
    "REPLICATION",
    "BYPASSRLS",
)


@dataclass
class RoleDef:
    name: str
    superuser: bool = False
    inherit: bool = True
    createrole: bool = False
    createdb: bool = False
    login: bool = False
    replication: bool = False
    bypassrls: bool = False
    connlimit: int = -1
    valid_until: str | None = None
    password: str | None = None  # the stored hash (never a plain password); None: unknown
    settings: list[str] = field(default_factory=list)  # role-wide "name=value"
    db_settings: list[str] = field(default_factory=list)  # in this database

    def flags(self) -> dict[str, bool]:
        return {
            "SUPERUSER": self.superuser,
            "INHERIT": self.inherit,
            "CREATEROLE": self.createrole,
            "CREATEDB": self.createdb,
            "LOGIN": self.login,
            "REPLICATION": self.replication,
            "BYPASSRLS": self.bypassrls,
        }


@dataclass
class ClusterObjects:
    """The record stored at ``ROLES_ENTRY``."""

    roles: list[RoleDef]
    memberships: list[dict[str, Any]]  # {role, member, admin}
    passwords: bool  # whether the hashes could be read
    database: dict[str, Any]  # owner, acl (aclitem texts), settings, connlimit
    extensions: list[dict[str, str]]  # name, version, schema
    policies: list[dict[str, Any]] = field(default_factory=list)  # schema, table, name, roles

    def policies_naming(self, missing: set[str]) -> list[dict[str, Any]]:
        """Row-level security policies that name one of ``missing`` roles."""
        return [p for p in self.policies if missing.intersection(p["roles"])]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "scholar-ops-pg-cluster/1",
            "roles": [r.__dict__ for r in self.roles],
            "memberships": self.memberships,
            "passwords": self.passwords,
            "database": self.database,
            "extensions": self.extensions,
            "policies": self.policies,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterObjects:
        return cls(
            roles=[RoleDef(**r) for r in data.get("roles", [])],
            memberships=list(data.get("memberships", [])),
            passwords=bool(data.get("passwords")),
            database=dict(data.get("database", {})),
            extensions=list(data.get("extensions", [])),
            policies=list(data.get("policies", [])),
        )

    def summary(self) -> dict[str, Any]:
        """What goes into the snapshot's details: names and counts, no secrets."""
        return {
            "roles": sorted(r.name for r in self.roles),
            "role_passwords": self.passwords,
            "extensions": self.extensions,
            "database_owner": self.database.get("owner"),
        }


def collect(conn: psycopg.Connection[Any]) -> ClusterObjects:
    """The cluster-wide objects the connection's database needs (in its transaction)."""
    direct = {int(r[0]) for r in conn.execute(_REFERENCED).fetchall()}
    # Memberships close the set both ways: the groups a referenced role belongs to give
    # it privileges; the members of a referenced group are how people log in to use it.
    edges = [
        (int(r[0]), int(r[1]), bool(r[2]))
        for r in conn.execute("SELECT roleid, member, admin_option FROM pg_auth_members")
    ]
    wanted = set(direct)
    changed = True
    while changed:
        changed = False
        for role, member, _ in edges:
            if role in wanted and member not in wanted:
                wanted.add(member)
                changed = True
            if member in wanted and role not in wanted:
                wanted.add(role)
                changed = True
    rows = conn.execute(
        """SELECT oid, rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
                  rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text
           FROM pg_roles WHERE oid = ANY(%s) AND rolname NOT LIKE 'pg\\_%%' ORDER BY rolname""",
        (sorted(wanted),),
    ).fetchall()
    names = {int(r[0]): str(r[1]) for r in rows}
    roles = {
        int(r[0]): RoleDef(
            name=str(r[1]),
            superuser=bool(r[2]),
            inherit=bool(r[3]),
            createrole=bool(r[4]),
            createdb=bool(r[5]),
            login=bool(r[6]),
            replication=bool(r[7]),
            bypassrls=bool(r[8]),
            connlimit=int(r[9]),
            valid_until=r[10],
        )
        for r in rows
    }
    readable = conn.execute("SELECT has_table_privilege('pg_authid', 'SELECT')").fetchone()
    passwords = bool(readable and readable[0])
    if passwords:
        for oid, pw in conn.execute(
            "SELECT oid, rolpassword FROM pg_authid WHERE oid = ANY(%s)", (sorted(roles),)
        ):
            roles[int(oid)].password = pw
    dboid_row = conn.execute(
        "SELECT oid FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    dboid = int(dboid_row[0]) if dboid_row else 0
    db_settings: list[str] = []
    for setrole, setdatabase, setconfig in conn.execute(
        "SELECT setrole, setdatabase, setconfig FROM pg_db_role_setting "
        "WHERE setdatabase IN (0, %s)",
        (dboid,),
    ):
        config = list(setconfig or [])
        if int(setrole) == 0:
            if int(setdatabase) == dboid:
                db_settings = config
        elif int(setrole) in roles:
            holder = roles[int(setrole)]
            if int(setdatabase) == 0:
                holder.settings = config
            else:
                holder.db_settings = config
    db = conn.execute(
        """SELECT pg_get_userbyid(datdba), datconnlimit,
                  coalesce(array(SELECT a::text FROM unnest(datacl) a), '{}')
           FROM pg_database WHERE oid = %s""",
        (dboid,),
    ).fetchone()
    database = {
        "owner": db[0] if db else None,
        "connlimit": int(db[1]) if db else -1,
        "acl": _explode_acl(conn, "datacl", "pg_database", dboid) if db and db[2] else [],
        "settings": db_settings,
    }
    memberships = [
        {"role": names[role], "member": names[member], "admin": admin}
        for role, member, admin in edges
        if role in names and member in names
    ]
    extensions = [
        {"name": r[0], "version": r[1], "schema": r[2]}
        for r in conn.execute(
            """SELECT e.extname, e.extversion, n.nspname FROM pg_extension e
               JOIN pg_namespace n ON n.oid = e.extnamespace
               WHERE e.extname <> 'plpgsql' ORDER BY 1"""
        )
    ]
    policies = [
        {"schema": r[0], "table": r[1], "name": r[2], "roles": list(r[3] or [])}
        for r in conn.execute(
            """SELECT n.nspname, c.relname, p.polname,
                      array(SELECT rolname FROM pg_roles WHERE oid = ANY(p.polroles)
                            ORDER BY rolname)
               FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2, 3"""
        )
    ]
    return ClusterObjects(
        policies=policies,
        roles=list(roles.values()),
        memberships=memberships,
        passwords=passwords,
        database=database,
        extensions=extensions,
    )


def _explode_acl(
    conn: psycopg.Connection[Any], column: str, table: str, oid: int
) -> list[dict[str, Any]]:
    rows = conn.execute(
        sql.SQL(
            """SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                      a.privilege_type, a.is_grantable
               FROM {t} x, aclexplode(x.{c}) a WHERE x.oid = %s"""
        ).format(t=sql.Identifier(table), c=sql.Identifier(column)),
        (oid,),
    ).fetchall()
    return [{"grantee": g, "privilege": p, "grantable": bool(w)} for g, p, w in rows]


def passwordless_logins(objs: ClusterObjects) -> list[str]:
    """Login roles whose password was not backed up (the backup role could not read them)."""
    if objs.passwords:
        return []
    return sorted(r.name for r in objs.roles if r.login)


# -- restore ----------------------------------------------------------------------------------

# Settings whose value is a list of quoted items (pg_dumpall's GUC_LIST_QUOTE list):
# stored as `"a", b`, they must be set back as a list of literals, not one string.
_LIST_SETTINGS = {
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "shared_preload_libraries",
    "local_preload_libraries",
}


def _split_list(value: str) -> list[str]:
    items: list[str] = []
    cur: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == '"':
            if quoted and i + 1 < len(value) and value[i + 1] == '"':
                cur.append('"')
                i += 1
            else:
                quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    items.append("".join(cur).strip())
    return [x for x in items if x]


def setting_sql(setting: str) -> sql.Composed:
    """``name = value`` for ALTER ... SET, from a stored ``name=value``."""
    name, _, value = setting.partition("=")
    if name.lower() in _LIST_SETTINGS:
        items = _split_list(value)
        rhs: sql.Composable = (
            sql.SQL(", ").join(sql.Literal(x) for x in items) if items else sql.Literal("")
        )
    else:
        rhs = sql.Literal(value)
    return sql.SQL("{} = {}").format(sql.Identifier(name), rhs)


@dataclass
class RolesOutcome:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # still missing afterwards
    warnings: list[str] = field(default_factory=list)


def existing_roles(conn: psycopg.Connection[Any]) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles")}


def missing_extensions(conn: psycopg.Connection[Any], objs: ClusterObjects) -> list[str]:
    """Extensions of the backup that the target server cannot create."""
    available = {str(r[0]) for r in conn.execute("SELECT name FROM pg_available_extensions")}
    return [e["name"] for e in objs.extensions if e["name"] not in available]


def ensure_roles(
    conn: psycopg.Connection[Any], objs: ClusterObjects, mode: RolesMode
) -> RolesOutcome:
    """Create the roles the backup needs and the cluster lacks (``mode`` create), never
    altering one that exists. ``conn`` is an autocommit connection to the target server."""
    have = existing_roles(conn)
    out = RolesOutcome()
    out.existing = sorted(r.name for r in objs.roles if r.name in have)
    missing = [r for r in objs.roles if r.name not in have]
    if mode != "create" or not missing:
        out.missing = sorted(r.name for r in missing)
        return out
    me = conn.execute(
        "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    is_super = bool(me and me[0])
    if not (me and (me[0] or me[1])):
        raise PermissionError(
            f"roles {', '.join(r.name for r in missing)} are missing on the target server and "
            "the restoring role may not create roles: restore as a superuser or a role with "
            "CREATEROLE, create them first, or pass --roles skip"
        )
    for role in missing:
        flags = role.flags()
        if not is_super and (role.superuser or role.replication or role.bypassrls):
            out.warnings.append(
                f"role {role.name!r} was created without SUPERUSER/REPLICATION/BYPASSRLS: the "
                "restoring role is not a superuser"
            )
            flags.update(SUPERUSER=False, REPLICATION=False, BYPASSRLS=False)
        parts: list[sql.Composable] = [sql.SQL(k if on else f"NO{k}") for k, on in flags.items()]
        parts.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(role.connlimit)))
        if role.password:
            parts.append(sql.SQL("PASSWORD {}").format(sql.Literal(role.password)))
        if role.valid_until:
            parts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(role.valid_until)))
        conn.execute(
            sql.SQL("CREATE ROLE {} WITH ").format(sql.Identifier(role.name))
            + sql.SQL(" ").join(parts)
        )
        for setting in role.settings:
            try:
                conn.execute(
                    sql.SQL("ALTER ROLE {} SET {}").format(
                        sql.Identifier(role.name), setting_sql(setting)
                    )
                )
            except psycopg.Error as e:
                out.warnings.append(
                    f"role {role.name!r}: setting {setting.partition('=')[0]} not restored: {e}"
                )
        out.created.append(role.name)
    created = set(out.created)
    for m in objs.memberships:
        # A role made here gets its memberships back; an existing role's memberships are
        # the new server's business (joining a group it did not belong to would alter it).
        if m["member"] not in created:
            if m["role"] in created:
                out.warnings.append(
                    f"existing role {m['member']!r} was not made a member of the new role "
                    f"{m['role']!r}: GRANT it by hand if it should be"
                )
            continue
        try:
            conn.execute(
                sql.SQL("GRANT {} TO {}{}").format(
                    sql.Identifier(m["role"]),
                    sql.Identifier(m["member"]),
                    sql.SQL(" WITH ADMIN OPTION" if m["admin"] else ""),
                )
            )
        except psycopg.Error as e:
            out.warnings.append(
                f"membership of {m['member']!r} in {m['role']!r} not restored: {e}".strip()
            )
    if not objs.passwords:
        logins = [r for r in passwordless_logins(objs) if r in created]
        if logins:
            out.warnings.append(
                "the backup holds no password for login roles "
                + ", ".join(logins)
                + " (the backup role could not read pg_authid): set them with ALTER ROLE ... PASSWORD"
            )
    out.existing = sorted(r.name for r in objs.roles if r.name in have)
    return out


def apply_database_objects(
    conn: psycopg.Connection[Any],
    dbname: str,
    objs: ClusterObjects,
    created_roles: set[str],
    with_owner: bool,
) -> list[str]:
    """Owner, privileges and settings of a database this restore created, and the
    per-database settings of the roles it created. Returns warnings."""
    warnings: list[str] = []
    have = existing_roles(conn)
    db = sql.Identifier(dbname)
    owner = objs.database.get("owner")

    def run(stmt: sql.Composed, what: str) -> None:
        try:
            conn.execute(stmt)
        except psycopg.Error as e:
            warnings.append(f"database {dbname!r}: {what} not restored: {str(e).strip()}")

    if with_owner and owner and owner in have:
        run(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, sql.Identifier(owner)), "owner")
    if objs.database.get("connlimit", -1) != -1:
        run(
            sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                db, sql.Literal(int(objs.database["connlimit"]))
            ),
            "connection limit",
        )
    if with_owner:
        acl = objs.database.get("acl") or []
        if acl:
            # Start from the backup's list: PUBLIC's defaults (CONNECT, TEMPORARY) are
            # in it when the source kept them, and absent when it revoked them.
            run(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db), "privileges")
        for item in acl:
            grantee = item["grantee"]
            if grantee is not None and grantee not in have:
                continue
            who = sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)
            run(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(item["privilege"]),
                    db,
                    who,
                    sql.SQL(" WITH GRANT OPTION" if item["grantable"] else ""),
                ),
                f"privilege {item['privilege']} of {grantee or 'PUBLIC'}",
            )
    for setting in objs.database.get("settings") or []:
        run(
            sql.SQL("ALTER DATABASE {} SET {}").format(db, setting_sql(setting)),
            f"setting {setting.partition('=')[0]}",
        )
    for role in objs.roles:
        if role.name not in created_roles:
            continue
        for setting in role.db_settings:
            run(
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET {}").format(
                    sql.Identifier(role.name), db, setting_sql(setting)
                ),
                f"setting {setting.partition('=')[0]} of role {role.name}",
            )
    return warnings

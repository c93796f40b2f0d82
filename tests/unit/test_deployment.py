"""docker/: the deployment cannot drift from the code it runs.

Docker does not run here, so these read the files: every command and option the compose
services run exists, every ADCLICK_* variable is a setting with a valid value, services
wait for what they need, the image runs adclick with sql/ and migrations/ where the code
looks for them, and the dashboard queries only metrics the code exports.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import re
import shlex
import subprocess
import tomllib
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer
import yaml
from packaging.specifiers import SpecifierSet
from prometheus_client.metrics import MetricWrapperBase
from pydantic import ValidationError

import adclick
import adclick.resources
from adclick.cli import app
from adclick.resources import REPO_ROOT
from adclick.settings import Settings

DOCKER = REPO_ROOT / "docker"
# Read by settings_customise_sources, not a field: the one variable that is no setting.
SETTINGS_SOURCES = {"ADCLICK_CONFIG_FILE"}
# Commands that are services of a deployment; each the CLI has must run in compose.
SERVICE_COMMANDS = {"migrate", "ingest", "close", "api", "maintain"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, and $$ for "$".
SUBSTITUTION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    # Every test below loops over services: with none, each would pass on nothing.
    assert found, "docker/compose.yaml defines no services"
    return found


def adclick_services() -> dict[str, dict[str, Any]]:
    """The services that run the adclick image (built from docker/Dockerfile)."""
    found = {
        name: service
        for name, service in services().items()
        if service.get("build", {}).get("dockerfile") == "docker/Dockerfile"
    }
    assert found, "no compose service builds docker/Dockerfile: nothing would be checked"
    return found


def substituted(value: object) -> str:
    """``value`` as compose passes it: defaults filled in, required variables made up."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        kind, default = match.group(2), match.group(3)
        return default if kind in (":-", "-") else "substituted"

    return SUBSTITUTION.sub(replace, str(value))


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):  # the KEY=VALUE form
        raw = dict(item.split("=", 1) for item in raw)
    return {key: substituted(value) for key, value in raw.items()}


def setting_variables() -> set[str]:
    return {f"ADCLICK_{name.upper()}" for name in Settings.model_fields} | SETTINGS_SOURCES


def test_every_adclick_service_runs_a_real_command_with_valid_options() -> None:
    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="adclick")
    for name, service in adclick_services().items():
        if "entrypoint" in service:
            continue  # not adclick: see the next test
        argv = service.get("command")
        # The exec form: a string would be split by compose's rules, not the shell's.
        assert isinstance(argv, list) and argv, f"service {name}: command must be a list"
        command = group.get_command(context, argv[0])
        assert command is not None, f"service {name}: `adclick {argv[0]}` is no command"
        try:  # parses every option and value as the command would, without running it
            command.make_context(argv[0], [str(a) for a in argv[1:]], parent=context)
        except Exception as exc:
            raise AssertionError(f"service {name}: `adclick {shlex.join(argv)}`: {exc}") from exc


def test_a_service_that_replaces_the_entry_point_imports_what_exists() -> None:
    for name, service in adclick_services().items():
        entrypoint = service.get("entrypoint")
        if entrypoint is None:
            continue
        assert entrypoint[:2] == ["python", "-c"], f"service {name}: adclick or python -c"
        code = ast.parse(entrypoint[2])
        for node in ast.walk(code):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (
                        f"service {name} imports {alias.name} from {node.module}, "
                        "which has no such name"
                    )


def test_every_service_command_of_the_cli_is_deployed() -> None:
    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="adclick")
    deployed = {
        service["command"][0]
        for service in adclick_services().values()
        if "entrypoint" not in service
    }
    for command in SERVICE_COMMANDS & set(group.list_commands(context)):
        assert command in deployed, f"`adclick {command}` has no service in compose.yaml"


def test_every_adclick_variable_in_the_deployment_is_a_setting() -> None:
    known = setting_variables()
    for name, service in services().items():
        for variable in environment(service):
            if variable.startswith("ADCLICK_"):
                assert variable in known, f"service {name}: {variable} is no setting"
    example = (DOCKER / ".env.example").read_text()
    for variable in re.findall(r"^#?\s*(ADCLICK_\w+)=", example, re.MULTILINE):
        assert variable in known, f".env.example: {variable} is no setting"
    for variable in re.findall(r"\b(ADCLICK_\w+)=", (DOCKER / "Dockerfile").read_text()):
        assert variable in known, f"Dockerfile: {variable} is no setting"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("ADCLICK_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
def test_every_adclick_service_starts_with_valid_settings() -> None:
    final = dockerfile_stages()[-1]
    dockerfile_environment = dict(
        pair.split("=", 1)
        for env in instructions(final, "ENV")
        for pair in shlex.split(env)
        if pair.startswith("ADCLICK_")
    )
    for name, service in adclick_services().items():
        with pytest.MonkeyPatch.context() as patch:  # each service on its own
            for variable, value in {**dockerfile_environment, **environment(service)}.items():
                patch.setenv(variable, value)
            try:
                Settings()
            except ValidationError as exc:
                raise AssertionError(f"service {name}: {exc}") from exc


def test_services_wait_for_what_they_need() -> None:
    everything = services()
    for name, service in everything.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {other: {"condition": "service_started"} for other in depends_on}
        for other, rule in depends_on.items():
            assert other in everything, f"{name} depends on {other}, which is no service"
            condition = rule.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in everything[other], f"{other} has no health check"
            if condition == "service_completed_successfully":
                # A one-shot that restarts would never complete.
                assert everything[other].get("restart") == "no", f"{other} must not restart"
    for name, service in adclick_services().items():
        if service.get("command", [None])[0] == "migrate" or "entrypoint" in service:
            continue
        rule = (service.get("depends_on") or {}).get("migrate", {})
        assert rule.get("condition") == "service_completed_successfully", (
            f"{name} must start after the migrations"
        )


def test_the_api_listens_where_it_is_published_checked_and_scraped() -> None:
    (api,) = [s for s in adclick_services().values() if s.get("command", [None])[0] == "api"]
    settings = environment(api)
    assert settings["ADCLICK_API_HOST"] == "0.0.0.0"  # reachable from the other containers
    port = settings["ADCLICK_API_PORT"]
    published = [substituted(p).rsplit(":", 1)[-1] for p in api["ports"]]
    assert published == [port]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    scrape = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = []
    for job in scrape["scrape_configs"]:
        for config in job.get("dns_sd_configs", []):
            targets += [(host, str(config["port"])) for host in config["names"]]
        for config in job.get("static_configs", []):
            targets += [tuple(t.rsplit(":", 1)) for t in config["targets"]]
    assert targets, "prometheus.yml scrapes nothing"
    for host, target_port in targets:
        assert host in services(), f"prometheus.yml scrapes {host}, which is no service"
        if host == "api":
            assert target_port == port


def test_every_file_compose_mounts_is_in_the_repository() -> None:
    # A missing source makes Docker mount an empty directory instead, and the service fails.
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"service {name} mounts missing {source}"


@cache
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (keyword, arguments), one list per stage."""
    text = (DOCKER / "Dockerfile").read_text()
    global_args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, arguments = (current + stripped).partition(" ")
        current = ""
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            for arg, default in global_args.items():
                arguments = arguments.replace(f"${{{arg}}}", default)
            stages.append([])
        elif keyword == "ARG" and not stages and "=" in arguments:
            arg, default = arguments.split("=", 1)
            global_args[arg] = default
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for k, arguments in stage if k == keyword]


def test_the_image_runs_adclick_as_a_service_user_on_the_supported_python() -> None:
    builder, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert json.loads(instructions(final, "ENTRYPOINT")[-1]) == ["adclick"]
    user = instructions(final, "USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    image = instructions(final, "FROM")[-1].split()[0]
    name, _, tag = image.partition(":")
    assert name == "python" and "slim" in tag
    python = re.match(r"\d+\.\d+", tag)
    assert python, f"{image}: pin the Python version"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requires = SpecifierSet(project["requires-python"])
    # The slim tag follows the newest patch release of its minor version.
    assert f"{python.group(0)}.99" in requires, f"{image} is not Python {requires}"
    uv_sync = " ".join(instructions(builder, "RUN"))
    assert "uv sync --locked --no-dev" in uv_sync
    bootstrap = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text()
    pinned = re.search(r'^UV_VERSION="([^"]+)"', bootstrap, re.MULTILINE)
    assert pinned and f"UV_VERSION={pinned.group(1)}" in instructions(builder, "ARG"), (
        "the image's uv differs from scripts/bootstrap.sh"
    )


def test_the_image_holds_sql_and_migrations_where_the_code_looks_for_them() -> None:
    builder, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    workdir = instructions(final, "WORKDIR")[-1]
    # The editable install points at the builder's source path: it must be the same.
    assert instructions(builder, "WORKDIR")[-1] == workdir
    assert "--no-editable" not in " ".join(instructions(builder, "RUN")), (
        "installed into site-packages, adclick would look for sql/ beside the virtualenv"
    )
    destinations = set()
    for arguments in instructions(final, "COPY"):
        words = [w for w in arguments.split() if not w.startswith("--")]
        destinations.add(str(PurePosixPath(workdir, words[-1])))
    package = Path(adclick.resources.__file__).resolve().relative_to(REPO_ROOT)
    for folder in (
        package.parts[0],  # src: resources.py finds the repository two levels above adclick
        adclick.resources.SQL_DIR.relative_to(REPO_ROOT),
        adclick.resources.MIGRATIONS_DIR.relative_to(REPO_ROOT),
        adclick.resources.OPERATIONS_DIR.relative_to(REPO_ROOT),
        adclick.resources.WEB_DIST.relative_to(REPO_ROOT),
    ):
        assert str(PurePosixPath(workdir, folder)) in destinations, f"{folder}/ not in image"


def excluded(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out: the last pattern matching it or a parent."""
    parts = path.split("/")
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        globs = [glob, glob.removeprefix("**/")] if glob.startswith("**/") else [glob]
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatchcase(p, g) for p in prefixes for g in globs):
            result = not negated
    return result


def test_the_build_context_holds_what_the_image_copies_and_not_the_local_stack() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = []
    for stage in dockerfile_stages():
        for arguments in instructions(stage, "COPY"):
            if "--from=" not in arguments:
                copied += [w for w in arguments.split() if not w.startswith("--")][:-1]
    assert copied
    for source in (s.removeprefix("./") for s in copied):
        path = REPO_ROOT / source
        assert path.exists(), f"the Dockerfile copies missing {source}"
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(REPO_ROOT).as_posix()
            if "__pycache__" not in relative:
                assert not excluded(relative, patterns), f".dockerignore leaves out {relative}"
    for local in (".adclick/pgdata/PG_VERSION", ".venv/bin/python", ".git/HEAD"):
        assert excluded(local, patterns), f".dockerignore lets {local} into the image"


SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
# A metric built where it is used, e.g. the API's reconciliation gauges made per scrape.
CONSTRUCTOR = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(adclick_\w+)\"")


def exported_metric_names() -> set[str]:
    """Every sample name the adclick processes expose (Counters as _total, and so on)."""
    names = set()
    # The metric objects of every adclick.<concept>.metrics module.
    for package in pkgutil.iter_modules(adclick.__path__):
        if not (REPO_ROOT / "src" / "adclick" / package.name / "metrics.py").exists():
            continue
        module = importlib.import_module(f"adclick.{package.name}.metrics")
        for metric in vars(module).values():
            if isinstance(metric, MetricWrapperBase):
                for family in metric.describe():
                    names |= {family.name + s for s in SAMPLE_SUFFIXES[family.type]}
    # And the metrics constructed anywhere else under a literal name.
    for source in (REPO_ROOT / "src" / "adclick").rglob("*.py"):
        for kind, name in CONSTRUCTOR.findall(source.read_text()):
            base = name.removesuffix("_total") if kind == "Counter" else name
            names |= {base + s for s in SAMPLE_SUFFIXES[kind.lower()]}
    return names


def test_the_dashboard_queries_only_metrics_the_code_exports() -> None:
    dashboard = json.loads((DOCKER / "grafana" / "adclick-dashboard.json").read_text())
    exported = exported_metric_names()
    assert "adclick_ingest_events_consumed_total" in exported  # the collection works
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            # The data-source variable: the dashboard imports into any Grafana.
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            queried |= set(re.findall(r"\badclick_\w+", target["expr"]))
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"not exported by adclick: {sorted(queried - exported)}"


# Least privilege: the database role and Kafka user of each adclick command (the owner
# runs the migrations; `topics` needs no database).
DATABASE_ROLES = {
    "migrate": "adclick",
    "ingest": "adclick_ingest",
    "close": "adclick_closer",
    "api": "adclick_api",
    "maintain": "adclick_maintain",
}
KAFKA_USERS = {
    "topics": "adclick_topics",
    "ingest": "adclick_ingest",
    "close": "adclick_closer",
    "api": "adclick_api",
}
ACL = re.compile(
    r"^acl --allow-principal User:(\w+) ((?:--operation \w+ )+)--(topic|group) \"?([\w$-]+)\"?",
    re.MULTILINE,
)


def secret_names(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


def test_each_service_connects_as_its_own_role_with_a_password_from_its_secret() -> None:
    from adclick.db.passfile import passfile_entries  # noqa: F401  (the format the code reads)
    from adclick.settings import PROCESS_ROLES

    declared = compose()["secrets"]
    for name, service in adclick_services().items():
        command = service["command"][0]
        settings = environment(service)
        url = settings["ADCLICK_DATABASE_URL"]
        assert "postgres@" not in url, f"service {name} connects as the superuser"
        assert re.match(r"postgresql://[\w]+@", url), f"service {name}: a password in {url}?"
        if command not in DATABASE_ROLES:
            continue
        role = DATABASE_ROLES[command]
        assert url.startswith(f"postgresql://{role}@"), f"service {name} is not role {role}"
        passfile = settings["ADCLICK_DATABASE_PASSFILE"]
        secret = passfile.removeprefix("/run/secrets/")
        assert secret in secret_names(service), f"service {name} does not mount {secret}"
        assert declared[secret]["file"] == f"./secrets/{role}.pgpass"
        # Each service mounts its own database secret and no other.
        others = {s for s in secret_names(service) if s.startswith("adclick_")} - {secret}
        if command != "migrate":
            assert not others, f"service {name} mounts other roles' secrets: {others}"
    (migrate,) = [s for s in adclick_services().values() if s["command"][0] == "migrate"]
    logins = [
        migrate["command"][i + 1] for i, word in enumerate(migrate["command"]) if word == "--logins"
    ]
    files = {declared[p.removeprefix("/run/secrets/")]["file"] for p in logins}
    assert files == {f"./secrets/{role}.pgpass" for role in PROCESS_ROLES.values()}
    assert set(DATABASE_ROLES.values()) - {"adclick"} == set(PROCESS_ROLES.values())
    database = services()["timescaledb"]["environment"]
    assert database["POSTGRES_USER"] == "postgres"  # the superuser is for no service
    assert database["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "POSTGRES_PASSWORD" not in database  # only from its file


def test_kafka_asks_every_client_for_a_user_and_allows_only_what_acls_say() -> None:
    kafka = services()["kafka"]["environment"]
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(
        (lambda name, address: (name, address))(*entry.split("://"))
        for entry in kafka["KAFKA_LISTENERS"].split(",")
    )
    for listener, protocol in protocols.items():
        if listener == kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]:
            # Without authentication only where nothing outside the container reaches it.
            assert listeners[listener].startswith("localhost:"), listener
        else:
            assert protocol.startswith("SASL_"), f"listener {listener} is {protocol}"
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    for name, service in adclick_services().items():
        command = service["command"][0]
        env_files = service.get("env_file", [])
        if command in KAFKA_USERS:
            assert env_files == [f"secrets/kafka-{KAFKA_USERS[command]}.env"], name
        else:
            assert not env_files, f"service {name} has Kafka credentials it does not use"


def test_only_the_closer_writes_top_lists_only_ingest_dead_letters_producers_only_clicks() -> None:
    script = (DOCKER / "kafka-acls.sh").read_text().replace("\\\n", " ")
    script = re.sub(r" +", " ", script)
    acls = compose()["services"]["kafka-acls"]["environment"]
    names = {
        "$clicks": acls["ADCLICK_CLICKS_TOPIC"],
        "$dlq": acls["ADCLICK_DLQ_TOPIC"],
        "$top": acls["ADCLICK_TOP_ADS_TOPIC"],
        "$ADCLICK_CONSUMER_GROUP": acls["ADCLICK_CONSUMER_GROUP"],
    }
    settings = Settings()
    assert names["$clicks"] == settings.clicks_topic
    assert names["$dlq"] == settings.dlq_topic
    assert names["$top"] == settings.top_ads_topic
    assert names["$ADCLICK_CONSUMER_GROUP"] == settings.consumer_group
    writers: dict[str, set[str]] = {}
    readers: dict[str, set[str]] = {}
    for user, operations, kind, resource in ACL.findall(script):
        if kind != "topic" or resource == "$topic":
            continue
        topic = names[resource]
        ops = set(operations.split()) - {"--operation"}
        if "Write" in ops:
            writers.setdefault(topic, set()).add(user)
        if "Read" in ops:
            readers.setdefault(topic, set()).add(user)
    assert writers == {
        settings.clicks_topic: {"adclick_producer"},
        settings.dlq_topic: {"adclick_ingest"},
        settings.top_ads_topic: {"adclick_closer"},
    }
    assert readers == {
        settings.clicks_topic: {"adclick_ingest"},
        settings.top_ads_topic: {"adclick_api"},
    }


def test_make_secrets_writes_every_secret_compose_reads_outside_the_build_context(
    tmp_path: Path,
) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    script = docker / "make-secrets"
    script.write_bytes((DOCKER / "make-secrets").read_bytes())
    subprocess.run(["bash", str(script)], check=True, capture_output=True, timeout=60)
    generated = docker / "secrets"
    first = {f.name: f.read_text() for f in generated.iterdir()}
    subprocess.run(["bash", str(script)], check=True, capture_output=True, timeout=60)
    assert {f.name: f.read_text() for f in generated.iterdir()} == first  # kept
    assert generated.stat().st_mode & 0o077 == 0  # the directory is the owner's
    for secret in compose()["secrets"].values():
        assert (docker / secret["file"]).is_file(), secret["file"]
    for name, service in services().items():
        for env_file in service.get("env_file", []):
            assert (docker / env_file).is_file(), f"service {name}: {env_file}"
    from adclick.db.passfile import read_passfile

    for role in DATABASE_ROLES.values():
        passwords = read_passfile(generated / f"{role}.pgpass")
        assert list(passwords) == [role] and len(passwords[role]) >= 32
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert excluded("docker/secrets/adclick.pgpass", patterns)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "docker/secrets/adclick.pgpass"], cwd=REPO_ROOT
    )
    assert ignored.returncode == 0, "git would track docker/secrets/"

"""``engine=ray``: the ``predict`` job on Ray Data, for archives one machine cannot tag in time.

The driver lists the input files (a folder, a glob, parquet; local or any pyarrow/fsspec path). Ray tasks read
and split each file whole (a bad file becomes one error row, as in the local engine); an actor pool runs
:class:`Predictor` (one model load per actor) in ``map_batches``; tasks write the rows as JSONL or parquet
shards named ``part-<file>-<doc>-<sentence>``, so sorted shard names give the input order. Order is kept by
Ray's ``preserve_order``; each shard is checked to follow the previous one before the output is published.
Ray is imported here only (``pip install claimstance[ray]``).
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
import socket
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from claimstance.data.textio import InputError
from claimstance.errors import ConfigError, UserError
from claimstance.inference.documents import (
    TEXT_SUFFIXES,
    FileError,
    _merge,
    check_pairs,
    document_name,
    input_files,
    is_batch,
    read_file_documents,
    record_documents,
)
from claimstance.inference.predictor import Predictor

log = logging.getLogger(__name__)
FORMATS = ("jsonl", "parquet")
SUFFIXES = (*TEXT_SUFFIXES, ".parquet")  # what a folder is searched for under engine=ray


def _filesystem(spec: str):
    """``(pyarrow filesystem, path in it)`` for a local path or a URI (s3://, gs://, hdfs://, or any fsspec protocol)."""
    import pyarrow.fs as pafs

    if "://" not in spec:
        return pafs.LocalFileSystem(), str(Path(spec).resolve())
    try:
        return pafs.FileSystem.from_uri(spec)
    except Exception as arrow_err:  # a protocol pyarrow lacks: try fsspec's
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(spec)
        except Exception as err:
            raise UserError(f"{spec}: cannot open this filesystem ({arrow_err}; fsspec: {err})") from err
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def list_inputs(spec: str) -> tuple[list[tuple[str, str]], bool]:
    """``(path in the filesystem, document name)`` of every input file, in the order the local engine reads them,
    and whether ``spec`` is a batch (a folder or a glob: bad files are skipped) rather than one file."""
    if "://" not in spec:
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            files = [p for p in files if not any(part.startswith(".") for part in p.relative_to(path).parts)]
            if not files:
                raise InputError(f"{path}: no text or parquet files ({', '.join(SUFFIXES)}) in this folder")
        elif glob.has_magic(spec) or path.is_file():
            files = input_files(spec)
        else:
            raise InputError(f"{path}: input file does not exist")
        return [(str(p.resolve()), document_name(p, spec)) for p in files], is_batch(spec)
    import pyarrow.fs as pafs

    fs, root = _filesystem(spec)
    magic = glob.has_magic(root)
    base = root[: min(root.index(c) for c in "*?[" if c in root)].rsplit("/", 1)[0] if magic else root
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.File and not magic:
        return [(root, PurePosixPath(root).name)], False
    if info.type != pafs.FileType.Directory:
        raise InputError(f"{spec}: input does not exist")
    found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(base, recursive=True)) if i.type == pafs.FileType.File)
    found = [p for p in found if not any(part.startswith(".") for part in PurePosixPath(p).relative_to(base).parts)]
    if magic:
        found = [p for p in found if fnmatch.fnmatch(p, root)]
    else:
        found = [p for p in found if PurePosixPath(p).suffix.lower() in SUFFIXES]
    if not found:
        raise InputError(f"{spec}: no text or parquet files match")
    return [(p, p if magic else str(PurePosixPath(p).relative_to(base))) for p in found], True


def _parquet_records(table, source: str):
    """``(row number, record)`` of a parquet table, after checking it has a ``text`` column."""
    if "text" not in table.column_names:
        raise InputError(f"{source}: no 'text' column; it has {', '.join(table.column_names) or 'no columns'}")
    return enumerate(table.to_pylist(), 1)


def check_parquet(uri: str, path: str) -> None:
    """A single parquet file given as input= is checked on the driver: a missing column fails before Ray starts."""
    import pyarrow.parquet as pq

    fs, _ = _filesystem(uri)
    try:
        schema = pq.read_schema(path, filesystem=fs)
    except Exception as err:
        raise InputError(f"{uri}: not a readable parquet file ({err})") from err
    if "text" not in schema.names:
        raise InputError(f"{uri}: no 'text' column; it has {', '.join(schema.names) or 'no columns'}")


def read_file(uri: str, path: str, name: str, input_format: str, layout: str):
    """The documents of one file, read whole on a worker; a remote text file is copied to a local temporary first."""
    import pyarrow.parquet as pq

    fs, _ = _filesystem(uri)
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".parquet":
        table = pq.read_table(path, filesystem=fs)
        kind = "article" if input_format == "article" else "jsonl"
        return list(record_documents(uri, _parquet_records(table, uri), kind, layout, name))
    if "://" not in uri:
        return read_file_documents(Path(path), input_format, layout, name)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / f"input{suffix}"
        with fs.open_input_stream(path) as stream:
            local.write_bytes(stream.read())
        try:
            return read_file_documents(local, input_format, layout, name)
        except InputError as err:
            raise InputError(str(err).replace(str(local), uri)) from err


def _read_batch(batch: dict, input_format: str, layout: str, needs_pair: bool) -> dict:
    """Files in, sentence rows out: ``file, doc, row`` order keys, the row as JSON, the model's input, or an error."""
    out: dict[str, list] = {key: [] for key in ("file", "doc", "row", "json", "text", "pair", "error")}

    def emit(file: int, doc: int, row: int, record: str, text: str, pair: str, error: str) -> None:
        for key, value in zip(out, (file, doc, row, record, text, pair, error), strict=True):
            out[key].append(value)

    for index, uri, path, name in zip(batch["index"], batch["uri"], batch["path"], batch["name"], strict=True):
        try:
            documents = [
                check_pairs(d, str(uri), needs_pair) for d in read_file(str(uri), str(path), str(name), input_format, layout)
            ]
        except (InputError, OSError) as err:
            emit(int(index), -1, -1, "", "", "", json.dumps(FileError.of(str(uri), str(name), err).as_row()))
            continue
        except Exception as err:  # a corrupt parquet file: pyarrow's own errors
            emit(int(index), -1, -1, "", "", "", json.dumps(FileError(str(name), None, str(err)).as_row()))
            continue
        for doc, document in enumerate(documents):
            for row, (record, model_input) in enumerate(zip(document.rows, document.model_texts, strict=True)):
                pair = model_input["text_pair"] if isinstance(model_input, dict) else ""
                text = model_input["text"] if isinstance(model_input, dict) else model_input
                emit(int(index), doc, row, json.dumps(record, ensure_ascii=False, default=str), text, pair, "")  # parquet dates
    return out


class Tagger:
    """One model per actor: ``map_batches`` calls it on batches of sentence rows and gets the tagged rows as JSON."""

    def __init__(self, model_dir: str, backend: str, batch_size: int, threads, expected_labels, min_confidence) -> None:
        self.predictor = Predictor(
            model_dir, backend=backend, batch_size=batch_size, threads=threads, expected_labels=expected_labels
        )
        self.min_confidence = min_confidence

    def __call__(self, batch: dict) -> dict:
        keep = [i for i, error in enumerate(batch["error"]) if not error]
        inputs = [{"text": str(batch["text"][i]), "text_pair": str(batch["pair"][i])} for i in keep]
        texts = [item if item["text_pair"] else item["text"] for item in inputs]
        if any(isinstance(t, dict) for t in texts):
            texts = [t if isinstance(t, dict) else {"text": t} for t in texts]
        predictions = iter(self.predictor.predict(texts, self.min_confidence) if texts else [])
        lines = []
        for error, record in zip(batch["error"], batch["json"], strict=True):
            lines.append("" if error else json.dumps(_merge(json.loads(record), next(predictions)), ensure_ascii=False))
        return {"file": batch["file"], "doc": batch["doc"], "row": batch["row"], "line": lines, "error": batch["error"]}


def _key(file: int, doc: int, row: int) -> str:
    return f"{file:07d}-{doc:07d}-{row:07d}"


def _write_batch(batch: dict, uri: str, staging: str, output_format: str) -> dict:
    """Write one shard of tagged rows (named by its first row's order key); report its range and the batch's errors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(
        (int(f), int(d), int(r), line)
        for f, d, r, line, e in zip(*(batch[k] for k in ("file", "doc", "row", "line", "error")), strict=True)
        if not e
    )
    result: dict[str, list] = {"kind": [], "name": [], "rows": [], "docs": [], "first": [], "last": [], "error": []}

    def add(kind: str, name: str = "", count: int = 0, docs: int = 0, first: str = "", last: str = "", error: str = "") -> None:
        for key, value in zip(result, (kind, name, count, docs, first, last, error), strict=True):
            result[key].append(value)

    for f, e in zip(batch["file"], batch["error"], strict=True):
        if e:
            add("error", first=_key(int(f), 0, 0), error=str(e))
    if rows:
        fs, _ = _filesystem(uri)
        name = f"part-{_key(*rows[0][:3])}.{output_format}"
        with fs.open_output_stream(f"{staging}/{name}") as stream:
            if output_format == "jsonl":
                stream.write("".join(line + "\n" for *_, line in rows).encode("utf-8"))
            else:
                pq.write_table(pa.Table.from_pylist([json.loads(line) for *_, line in rows]), stream)
        starts = sum(1 for _, _, row, _ in rows if row == 0)  # each document has one first sentence
        add("shard", name, len(rows), starts, _key(*rows[0][:3]), _key(*rows[-1][:3]))
    return result


def _connect(ray, settings) -> bool:
    """Start a local Ray (True) or join ``ray.address`` (False), failing with one message when it cannot be reached."""
    address = settings.get("address")
    timeout = float(settings.get("connect_timeout_s", 30))
    if address is None:
        try:
            ray.init(
                num_cpus=settings.get("num_cpus"), include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False
            )
        except Exception as err:  # Ray waits a fixed time for its own processes, which an overloaded machine can miss
            ray.shutdown()
            raise UserError(
                f"engine=ray: a local Ray did not start on this machine ({err}); retry, or join a cluster with ray.address="
            ) from err
        return True
    # Ray tries a GCS address about once a second for this many tries (its own default); ray:// has its own limit.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, round(timeout))))
    try:
        ray.init(address=str(address), log_to_driver=False)
    except Exception as err:  # ConnectionError, TimeoutError, RuntimeError depending on the address kind
        ray.shutdown()
        raise UserError(f"ray.address={address}: no Ray cluster answered there within {timeout:g} s ({err})") from err
    return False


def check_address(address: str | None, timeout: float) -> None:
    """A host:port (or ray://host:port) address must accept a connection within ``timeout``, before Ray is asked."""
    if address is None or address == "auto":
        return
    target = str(address).split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray.address must be null, auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise UserError(f"ray.address={address}: no Ray cluster answered there within {timeout:g} s ({reason})") from err


def _settings(cfg):
    settings = cfg.get("ray") or {}
    output_format = str(settings.get("format", "jsonl"))
    if output_format not in FORMATS:
        raise ConfigError(f"ray.format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    if cfg.output is None:
        raise ConfigError("engine=ray writes shards to a folder: give output=DIR (local or a filesystem URI)")
    if cfg.get("html") is not None:
        raise ConfigError("html= is for the local engine; an archive tagged with engine=ray is read from its shards")
    if cfg.text is not None:
        raise ConfigError("engine=ray tags input=FOLDER|GLOB|PARQUET; use the local engine for text=")
    return settings, output_format


def tag_with_ray(cfg, on_error: str, min_confidence: float | None):
    """The predict job on Ray Data; returns the same :class:`~claimstance.inference.tagging.Tagged` as the local engine."""
    import pyarrow.fs as pafs

    from claimstance.inference.tagging import Tagged, finish_batch

    settings, output_format = _settings(cfg)
    spec = str(cfg.input)
    check_address(settings.get("address"), float(settings.get("connect_timeout_s", 30)))
    files, batch = list_inputs(spec)
    batch = batch and on_error != "fail"
    if not batch and len(files) == 1 and files[0][0].endswith(".parquet"):
        check_parquet(spec, files[0][0])
    predictor = Predictor(cfg.model_dir, backend=cfg.backend, expected_labels=cfg.expected_labels)  # a bad export fails here
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise UserError("engine=ray needs Ray: pip install 'claimstance[ray]'") from err
    fs, target = _filesystem(str(cfg.output))
    local = fs.type_name == "local"  # a rename publishes a local folder whole; an object store has no rename
    staging = f"{PurePosixPath(target).parent}/.{PurePosixPath(target).name}-partial-{uuid.uuid4().hex[:8]}" if local else target
    started = False if ray.is_initialized() else _connect(ray, settings)
    try:
        if not local:
            fs.delete_dir_contents(target, missing_dir_ok=True)
        fs.create_dir(staging, recursive=True)
        needs_pair = bool(getattr(predictor, "text_pair", False))
        results = _run(ray, cfg, settings, output_format, files, min_confidence, staging, needs_pair)
        errors = [FileError(**json.loads(e)) for r in sorted(results, key=lambda r: r["first"]) if (e := r["error"])]
        if errors and not batch:
            first = errors[0]
            uri = next((_file_uri(spec, path) for path, name in files if name == first.file), first.file)
            raise InputError(str(FileError(uri, first.line, first.problem)))
        shards = sorted((r["first"], r["last"], r["name"], r["rows"], r["docs"]) for r in results if r["kind"] == "shard")
        for (_, last, name, *_), (first, *_) in zip(shards, shards[1:], strict=False):
            if first <= last:
                raise RuntimeError(f"shard {name} overlaps the next one: Ray did not keep the input order")
        if local:
            if fs.get_file_info(target).type != pafs.FileType.NotFound:
                fs.delete_dir(target)
            fs.move(staging, target)
        else:
            _write_bytes(fs, f"{target}/_SUCCESS", b"")  # Spark's convention: the shards are complete once this exists
    finally:
        if local and fs.get_file_info(staging).type != pafs.FileType.NotFound:
            fs.delete_dir(staging)
        if started:
            ray.shutdown()
    count = sum(shard[3] for shard in shards)
    log.info("Wrote %d sentence(s) in %d shard(s) to %s", count, len(shards), cfg.output)
    errors_file = None
    if batch and local:
        errors_file = finish_batch(str(cfg.output), errors, len(files))
    elif batch and errors:
        errors_file = f"{target.rstrip('/')}.errors.jsonl"
        _write_bytes(fs, errors_file, "".join(json.dumps(e.as_row()) + "\n" for e in errors).encode("utf-8"))
        finish_batch(None, errors, len(files))
    return Tagged(count, sum(shard[4] for shard in shards), errors, errors_file)


def _write_bytes(fs, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def _run(ray, cfg, settings, output_format: str, files, min_confidence, staging: str, needs_pair: bool) -> list[dict]:
    """Run the pipeline (read and split, tag on the actor pool, write shards); one row per shard and per bad file."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    spec = str(cfg.input)
    items = [{"index": i, "uri": _file_uri(spec, path), "path": path, "name": name} for i, (path, name) in enumerate(files)]
    actors = settings.get("actors", 1)
    if isinstance(actors, int):
        pool = ray.data.ActorPoolStrategy(size=actors)
    else:
        low, high = (int(a) for a in actors)
        pool = ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    cpus = float(settings.get("cpus_per_actor", 1))
    threads = cfg.threads if cfg.threads is not None else max(1, int(cpus))
    model = (str(cfg.model_dir), cfg.backend, int(cfg.batch_size), threads, cfg.expected_labels, min_confidence)
    dataset = (
        ray.data.from_items(items, override_num_blocks=len(items))
        .map_batches(
            _read_batch,
            batch_size=1,
            fn_kwargs={"input_format": cfg.input_format, "layout": cfg.layout, "needs_pair": needs_pair},
        )
        .map_batches(
            Tagger,
            batch_size=int(settings.get("batch_size", 256)),
            compute=pool,
            num_cpus=cpus,
            fn_constructor_args=model,
        )
        .map_batches(
            _write_batch,
            batch_size=int(settings.get("rows_per_shard", 100_000)),
            fn_kwargs={"uri": str(cfg.output), "staging": staging, "output_format": output_format},
        )
    )
    return dataset.take_all()


def _file_uri(spec: str, path: str) -> str:
    """How a file is named in messages: the path for local input, scheme://path for a URI input."""
    return f"{spec.split('://', 1)[0]}://{path}" if "://" in spec else path

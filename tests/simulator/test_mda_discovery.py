"""Cloud Discovery endpoints and the self-served upload targets, driven through `MdaService` (no server)."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest

from localdev.simulator.wire import SimRequest
from tests.simulator.mda_fakes import Clock, admin, bearer, call, call_url, make_service, payload

UPLOAD_URL = "/api/v1/discovery/upload_url/"
DONE = "/api/v1/discovery/done_upload/"
BLOCKBLOB = {"x-ms-blob-type": "BlockBlob"}
LOG = b"2024-05-01 10:00:00 10.0.0.1 GET https://dropbox.com/ 200 1234\n"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def svc(clock):
    return make_service(clock=clock)


def _issue(svc, source="PALO_ALTO", filename="fw.log") -> Any:
    response = call(svc, "GET", UPLOAD_URL, query={"filename": filename, "source": source})
    assert response.status == 200, response.body
    return payload(response)


def _done(svc, url, stream="paloalto-hq", **extra):
    return call(svc, "POST", DONE, {"uploadUrl": url, "inputStreamName": stream, **extra})


# -- upload_url ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source", ["PALO_ALTO", "ZSCALER_CEF", "CUSTOM_PARSER", "WANDERA_SYSLOG", "MICROSFOT_ISA"]
)
def test_upload_url_accepts_every_log_type_name(svc, source):
    issued = _issue(svc, source)
    assert issued["provider"] == "azure"
    assert issued["url"].startswith("https://127.0.0.1:4443/blob/uploads/") and "sig=" in issued["url"]


@pytest.mark.parametrize(
    "query",
    [
        {"filename": "a.log", "source": "palo_alto"},
        {"filename": "a.log", "source": "INVALID"},
        {"filename": "a.log"},
        {"source": "PALO_ALTO"},
    ],
)
def test_upload_url_rejects_unknown_or_missing_parameters(svc, query):
    response = call(svc, "GET", UPLOAD_URL, query=query)
    assert response.status == 400 and payload(response)["detail"]


def test_each_upload_gets_its_own_url(svc):
    assert _issue(svc)["url"] != _issue(svc)["url"]


# -- self-served Azure blob ----------------------------------------------------------------------------------


def test_single_put_then_done_upload_records_the_upload(svc):
    url = _issue(svc, filename="fw 1.log")["url"]
    put = call_url(svc, "PUT", url, LOG, BLOCKBLOB)
    assert put.status == 201 and put.headers["ETag"] and "Content-MD5" in put.headers
    got = call_url(svc, "GET", url)
    assert got.status == 200 and got.body == LOG
    done = _done(svc, url)
    assert done.status == 200
    body = payload(done)
    assert body["success"] is True and len(body["inputStreamId"]) == 24
    streams = {s["displayName"]: s for s in payload(call(svc, "GET", "/api/discovery/streams/"))["streams"]}
    assert body["inputStreamId"] == streams["paloalto-hq"]["_id"]
    assert streams["paloalto-hq"]["logFilesHistoryCount"] == 1
    [record] = admin(svc, "GET", "uploads")["uploads"]
    assert record["sha256"] == hashlib.sha256(LOG).hexdigest() and record["size"] == len(LOG)
    assert (
        record["stream"],
        record["snapshot"],
        record["source"],
        record["filename"],
        record["provider"],
    ) == ("paloalto-hq", False, "PALO_ALTO", "fw 1.log", "azure")


def test_put_without_block_blob_header_is_400(svc):
    url = _issue(svc)["url"]
    response = call_url(svc, "PUT", url, LOG)
    assert response.status == 400 and b"MissingRequiredHeader" in response.body
    assert call_url(svc, "PUT", url, LOG, {"x-ms-blob-type": "AppendBlob"}).status == 400


def test_put_without_content_length_is_411(svc):
    url = _issue(svc)["url"]
    parts = url.split("?", 1)
    from urllib.parse import parse_qs

    request = SimRequest(
        "PUT",
        parts[0].replace("https://127.0.0.1:4443", ""),
        parse_qs(parts[1]),
        {"x-ms-blob-type": "BlockBlob", "transfer-encoding": "chunked"},
        LOG,
    )
    assert svc.handle(request).status == 411


def test_single_put_over_the_limit_is_413_and_blocks_work(svc):
    admin(svc, "POST", "discovery/config", {"single_put_limit": 1024, "max_file_size": 4096})
    url = _issue(svc)["url"]
    too_big = call_url(svc, "PUT", url, b"a" * 1025, BLOCKBLOB)
    assert too_big.status == 413 and b"RequestBodyTooLarge" in too_big.body
    blocks = [bytes([65 + i]) * 1000 for i in range(3)]
    ids = [base64.b64encode(f"block-{i:04d}".encode()).decode() for i in range(3)]
    for block_id, data in zip(ids, blocks, strict=True):
        staged = call_url(svc, "PUT", f"{url}&comp=block&blockid={block_id}", data)
        assert staged.status == 201
    listing = call_url(svc, "GET", f"{url}&comp=blocklist&blocklisttype=all")
    assert listing.status == 200 and listing.body.count(b"<Block>") == 3
    xml = "<?xml version='1.0' encoding='utf-8'?><BlockList>" + "".join(f"<Latest>{i}</Latest>" for i in ids)
    committed = call_url(svc, "PUT", f"{url}&comp=blocklist", (xml + "</BlockList>").encode())
    assert committed.status == 201
    assert call_url(svc, "GET", url).body == b"".join(blocks)
    assert _done(svc, url).status == 200
    assert admin(svc, "GET", "uploads")["uploads"][0]["size"] == 3000


def test_block_list_over_the_file_size_limit_is_rejected(svc):
    admin(svc, "POST", "discovery/config", {"single_put_limit": 1024, "max_file_size": 1500})
    url = _issue(svc)["url"]
    ids = [base64.b64encode(f"b{i}".encode()).decode() for i in range(2)]
    assert call_url(svc, "PUT", f"{url}&comp=block&blockid={ids[0]}", b"x" * 1000).status == 201
    assert call_url(svc, "PUT", f"{url}&comp=block&blockid={ids[1]}", b"y" * 1000).status == 413


def test_block_list_naming_an_unstaged_block_is_400(svc):
    url = _issue(svc)["url"]
    body = b"<BlockList><Latest>" + base64.b64encode(b"nope") + b"</Latest></BlockList>"
    response = call_url(svc, "PUT", f"{url}&comp=blocklist", body)
    assert response.status == 400 and b"InvalidBlockList" in response.body


def test_tampered_or_expired_sas_is_403(svc, clock):
    url = _issue(svc)["url"]
    tampered = url.replace("sig=", "sig=AAAA")
    response = call_url(svc, "PUT", tampered, LOG, BLOCKBLOB)
    assert response.status == 403 and b"AuthenticationFailed" in response.body
    clock.advance(3601)
    assert call_url(svc, "PUT", url, LOG, BLOCKBLOB).status == 403


def test_streamed_put_reads_only_content_length_bytes(svc):
    from urllib.parse import parse_qs, urlsplit

    url = urlsplit(_issue(svc)["url"])
    request = SimRequest(
        "PUT", url.path, parse_qs(url.query), {"x-ms-blob-type": "BlockBlob", "content-length": str(len(LOG))}
    )
    assert svc.wants_stream("PUT", url.path) and not svc.wants_stream("POST", "/api/v1/alerts/")
    stream = io.BytesIO(LOG + b"NEXT REQUEST")
    assert svc.handle_stream(request, stream).status == 201
    assert stream.read() == b"NEXT REQUEST"


# -- done_upload ---------------------------------------------------------------------------------------------


def test_done_upload_rejects_urls_it_did_not_issue_and_repeats(svc):
    url = _issue(svc)["url"]
    call_url(svc, "PUT", url, LOG, BLOCKBLOB)
    assert _done(svc, url + "&x=1").status == 400
    assert _done(svc, url.replace("https://127.0.0.1:4443", "https://elsewhere")).status == 400
    assert _done(svc, url).status == 200
    again = _done(svc, url)
    assert again.status == 400 and "already" in payload(again)["detail"]


def test_done_upload_unknown_stream_is_400_with_the_documented_code(svc):
    url = _issue(svc)["url"]
    call_url(svc, "PUT", url, LOG, BLOCKBLOB)
    response = _done(svc, url, stream="No Such Source")
    assert response.status == 400
    assert (
        payload(response)["errorMessageCode"]
        == "CONSOLE_DISCOVERY_SETTINGS_PARSE_LOG_TASK_ERROR_NOT_FOUND_INPUT_STREAM"
    )
    # the failure does not consume the upload: a snapshot with the same name then succeeds
    snap = _done(svc, url, stream="No Such Source", uploadAsSnapshot=True)
    assert snap.status == 200
    streams = payload(call(svc, "GET", "/api/discovery/streams/"))["streams"]
    report = next(s for s in streams if s["_id"] == payload(snap)["inputStreamId"])
    assert report["displayName"] == "No Such Source" and report["streamType"] == 5
    assert admin(svc, "GET", "uploads")["uploads"][0]["snapshot"] is True


def test_done_upload_requires_a_non_empty_blob_without_bom(svc):
    url = _issue(svc)["url"]
    missing = _done(svc, url)
    assert missing.status == 400 and "not found" in payload(missing)["detail"]
    call_url(svc, "PUT", url, b"", BLOCKBLOB)
    assert "empty" in payload(_done(svc, url))["detail"]
    call_url(svc, "PUT", url, b"\xef\xbb\xbf" + LOG, BLOCKBLOB)
    bom = _done(svc, url)
    assert bom.status == 400 and "BOM" in payload(bom)["detail"]
    call_url(svc, "PUT", url, LOG, BLOCKBLOB)
    assert _done(svc, url).status == 200


def test_done_upload_accepts_a_form_body(svc):
    from urllib.parse import urlencode

    url = _issue(svc)["url"]
    call_url(svc, "PUT", url, LOG, BLOCKBLOB)
    body = urlencode({"uploadUrl": url, "inputStreamName": "zscaler-cloud", "uploadAsSnapshot": "false"})
    response = call(svc, "POST", DONE, body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200, response.body


def test_streams_added_through_admin_accept_uploads(svc):
    added = admin(svc, "POST", "streams", {"displayName": "branch-fortigate", "logType": "FORTIGATE_SYSLOG"})
    assert added["logType"] == 136 and added["streamType"] == 1
    url = _issue(svc, "FORTIGATE_SYSLOG")["url"]
    call_url(svc, "PUT", url, LOG, BLOCKBLOB)
    assert payload(_done(svc, url, stream="branch-fortigate"))["inputStreamId"] == added["_id"]


def test_streams_list_has_the_global_view(svc):
    response = call(svc, "GET", "/api/discovery/streams", auth=bearer("Discovery.read"))
    streams = payload(response)["streams"]
    assert streams[0]["displayName"] == "Global View"
    for stream in streams:
        assert (
            len(stream["_id"]) == 24
            and isinstance(stream["logType"], int)
            and stream["created"].endswith("Z")
        )


# -- aws provider --------------------------------------------------------------------------------------------


def test_aws_provider_presigned_put_and_done_upload(svc):
    admin(svc, "POST", "discovery/config", {"provider": "aws"})
    issued = _issue(svc, "ZSCALER")
    assert issued["provider"] == "aws"
    url = issued["url"]
    assert "/s3/mda-discovery-contoso/" in url and "X-Amz-Signature=" in url
    bad = call_url(svc, "PUT", url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), LOG)
    assert bad.status == 403 and b"SignatureDoesNotMatch" in bad.body
    put = call_url(svc, "PUT", url, LOG)
    assert put.status == 200 and put.headers["ETag"] == f'"{hashlib.md5(LOG).hexdigest()}"'  # noqa: S324
    assert call_url(svc, "GET", url).body == LOG
    assert _done(svc, url, stream="zscaler-cloud").status == 200
    assert admin(svc, "GET", "uploads")["uploads"][0]["provider"] == "aws"


def test_aws_put_over_the_file_size_limit_is_entity_too_large(svc):
    admin(svc, "POST", "discovery/config", {"provider": "aws", "max_file_size": 10})
    response = call_url(svc, "PUT", _issue(svc)["url"], LOG)
    assert response.status == 400 and b"EntityTooLarge" in response.body


def test_discovery_config_validation(svc):
    bad = svc.handle_admin(SimRequest("POST", "/", {}, {}, b'{"provider": "gcp"}'), "discovery/config")
    assert bad.status == 400
    assert admin(svc, "GET", "discovery/config")["provider"] == "azure"


# -- block scripts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [102, 104, 108, 112, 120, 129, 135])
@pytest.mark.parametrize("kind", ["banned", "allowed"])
def test_block_scripts_are_plain_text_for_the_seven_formats(svc, fmt, kind):
    response = call(svc, "GET", "/api/discovery_block_scripts/", query={"format": str(fmt), "type": kind})
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    assert ("angieslist" in text) == (kind == "banned") and ("salesforce" in text) == (kind == "allowed")
    first = text.splitlines()[0]
    if fmt == 102:
        assert first == (
            "url.domain=angieslist.com deny" if kind == "banned" else "url.domain=office.com allow"
        )
    if fmt == 120:
        assert first == (".angieslist.com" if kind == "banned" else ".office.com")


def test_block_script_bad_format_is_400(svc):
    response = call(svc, "GET", "/api/discovery_block_scripts/", query={"format": "999", "type": "banned"})
    assert response.status == 400

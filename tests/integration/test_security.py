"""TLS, passwords and ACLs against a real Mosquitto; and no network peer but the broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_slm.broker import free_port
from tests.daemon_fixtures import InProcessDaemon, daemon_settings, start_subprocess_daemon, terminate, write_config
from tests.mqtt_fixtures import Broker, Recorder, start_broker

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def make_pki(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    srv_key, srv_csr, srv_crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca_crt,
        "-days",
        "2",
        "-subj",
        "/CN=edge-test-ca",
    )
    run(
        "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", srv_key, "-out", srv_csr, "-subj", "/CN=localhost"
    )
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        srv_csr,
        "-CA",
        ca_crt,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        srv_crt,
        "-days",
        "2",
        "-extfile",
        ext,
    )
    return {"ca": ca_crt, "cert": srv_crt, "key": srv_key}


@pytest.fixture()
def secure_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed")
    pki = make_pki(tmp_path / "pki")
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "edge", "s3cret"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "sensor", "sensorpw"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(
        "user edge\ntopic readwrite edge/#\n\nuser sensor\ntopic write edge/telemetry/#\ntopic read edge/alerts/#\n"
    )
    port = free_port()
    extra = (
        f"password_file {passwd}\nacl_file {acl}\ncafile {pki['ca']}\ncertfile {pki['cert']}\nkeyfile {pki['key']}\n"
    )
    broker = start_broker(tmp_path / "broker", port, extra_conf=extra, anonymous=False)
    yield broker, pki
    broker.stop()


def _sensor_client(port: int, ca: Path) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sensor-{time.monotonic_ns()}")
    client.username_pw_set("sensor", "sensorpw")
    client.tls_set(ca_certs=str(ca))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_tls_with_password_and_acl(secure_broker: tuple[Broker, dict[str, Path]], state_dir: Path) -> None:
    broker, pki = secure_broker
    received: list[dict[str, object]] = []
    sensor = _sensor_client(broker.port, pki["ca"])
    sensor.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    sensor.subscribe("edge/alerts/+", qos=1)
    settings = daemon_settings(
        broker.port,
        state_dir,
        mqtt={"tls": True, "tls_ca_file": str(pki["ca"]), "username": "edge", "password": "s3cret"},
    )
    with InProcessDaemon(settings):
        for i in range(20):
            sensor.publish(
                "edge/telemetry/pump-s",
                json.dumps({"ts": 1_790_000_000 + i, "signals": {"vibration_rms_mm_s": 9.1}}),
                qos=1,
            )
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    sensor.loop_stop()
    assert received and received[0]["rule"] == "vibration.iso10816"


def test_wrong_password_is_a_clear_error_with_backoff(
    secure_broker: tuple[Broker, dict[str, Path]], state_dir: Path
) -> None:
    broker, pki = secure_broker
    settings = daemon_settings(
        broker.port,
        state_dir,
        mqtt={"tls": True, "tls_ca_file": str(pki["ca"]), "username": "edge", "password": "wrong"},
    )
    with InProcessDaemon(settings, expect_connection=False) as running:
        time.sleep(3.0)
        daemon = running.daemon
        assert running.running  # no crash loop: it keeps running and retrying
        assert not daemon.bus.connected
        assert "refused" in daemon.bus.last_error and (
            "authori" in daemon.bus.last_error.lower() or "password" in daemon.bus.last_error.lower()
        )
        assert daemon.bus.counters.connects == 0
    assert not running.running


def test_untrusted_server_certificate_is_refused(
    secure_broker: tuple[Broker, dict[str, Path]], state_dir: Path, tmp_path: Path
) -> None:
    broker, _ = secure_broker
    other = make_pki(tmp_path / "other-pki")  # a CA that did not sign the broker's certificate
    settings = daemon_settings(
        broker.port,
        state_dir,
        mqtt={"tls": True, "tls_ca_file": str(other["ca"]), "username": "edge", "password": "s3cret"},
    )
    with InProcessDaemon(settings, expect_connection=False) as running:
        time.sleep(2.5)
        assert running.running and not running.daemon.bus.connected
        assert running.daemon.bus.last_error


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_endpoints(pid: int, inodes: set[str]) -> list[tuple[str, int, str, int, str]]:
    out = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                local, remote = cols[1], cols[2]
                out.append(
                    (table, int(local.split(":")[1], 16), remote.split(":")[0], int(remote.split(":")[1], 16), cols[3])
                )
    return out


def test_daemon_talks_to_no_one_but_the_broker(broker: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path / "site.toml", broker.port, tmp_path / "state")
    rec = Recorder(broker.port, ["edge/status/+"])
    proc = start_subprocess_daemon(config)
    try:
        assert rec.wait_for(lambda: ("edge/status/sub-node", b"online") in rec.messages, 30)
        time.sleep(1.5)  # metrics published, steady state
        endpoints = _tcp_endpoints(proc.pid, _socket_inodes(proc.pid))
        # paho wakes its own loop through a loopback TCP pair: both ends are this process.
        own_ports = {local for _, local, _, _, _ in endpoints}
        external = [e for e in endpoints if e[3] not in own_ports]
        assert external, "expected the broker connection"
        for table, _local_port, remote_ip, remote_port, _state in external:
            assert table.startswith("tcp") and remote_ip == "0100007F" and remote_port == broker.port, endpoints
    finally:
        code, err = terminate(proc)
        rec.close()
    assert code == 0, err

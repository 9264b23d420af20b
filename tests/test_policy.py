"""The static security policy: privilege, host paths, devices, build contexts, names, labels."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import Issue, Location
from reconciler.manifests import policy, policy_files
from reconciler.manifests.loader import Document
from reconciler.manifests.policy import (
    PRIVILEGE_FIX,
    check_policy,
    find_repo_root,
    is_bind_source,
    normalize_host_path,
)


def doc(base_dir: Path, kind: str, spec: dict[str, Any], **meta: Any) -> Document:
    data = {"apiVersion": "podform/v1", "kind": kind, "metadata": {"name": "web", **meta}}
    return Document(file="m.yaml", index=0, data={**data, "spec": spec}, base_dir=base_dir)


def workload(base_dir: Path, **spec: Any) -> Document:
    return doc(base_dir, "Workload", {"image": "busybox:latest", **spec})


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of the test's own, so the home rule does not depend on who runs the tests."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def check(document: Document, allow: bool = False) -> list[Issue]:
    return check_policy([document], allow_privileged=allow)


def only(issues: list[Issue], json_path: str, fragment: str) -> None:
    assert [i.json_path for i in issues] == [json_path], issues
    assert fragment in issues[0].message, issues[0].message


# --- privilege -------------------------------------------------------------------------------

PRIVILEGED = [
    ({"privileged": True}, "$.spec.privileged"),
    ({"network": "host"}, "$.spec.network"),
    ({"network": "ns:/proc/1/ns/net"}, "$.spec.network"),
    ({"capAdd": ["SYS_ADMIN"]}, "$.spec.capAdd[0]"),
    ({"capAdd": ["ALL"]}, "$.spec.capAdd[0]"),
    ({"capAdd": ["sys_admin"]}, "$.spec.capAdd[0]"),
    ({"capAdd": ["CAP_SYS_ADMIN"]}, "$.spec.capAdd[0]"),
    ({"capAdd": ["NET_BIND_SERVICE", "cap_net_raw"]}, "$.spec.capAdd[1]"),
]


@pytest.mark.parametrize(("spec", "json_path"), PRIVILEGED)
def test_privileged_settings_are_refused_naming_the_fix(
    tmp_path: Path, spec: dict[str, Any], json_path: str
) -> None:
    """Privileged mode, host network and non-baseline capabilities are refused with the fix named."""
    only(check(workload(tmp_path, **spec)), json_path, PRIVILEGE_FIX)


@pytest.mark.parametrize(("spec", "json_path"), PRIVILEGED)
def test_allow_privileged_lifts_privileged_settings(
    tmp_path: Path, spec: dict[str, Any], json_path: str
) -> None:
    """With the Stack's allowPrivileged the same settings pass."""
    assert check(workload(tmp_path, **spec), allow=True) == []


def test_baseline_capabilities_and_plain_settings_pass(tmp_path: Path) -> None:
    """Every baseline capability, in any case and with a CAP_ prefix, needs no privilege."""
    caps = [*sorted(policy.BASELINE_CAPABILITIES), "cap_chown", "Net_Bind_Service"]
    spec = {"capAdd": caps, "privileged": False, "network": "bridge"}
    assert check(workload(tmp_path, **spec)) == []


def test_issue_carries_location_and_subject(tmp_path: Path) -> None:
    """An issue points at the offending node and names the document."""
    where = Location("m.yaml", 9, 7)
    document = Document(
        file="m.yaml",
        index=0,
        data=workload(tmp_path, capAdd=["SYS_ADMIN"]).data,
        base_dir=tmp_path,
        positions={("spec", "capAdd", 0): where},
    )
    (issue,) = check(document)
    assert (issue.location, issue.subject) == (where, 'Workload "web"')


# --- bind mounts -----------------------------------------------------------------------------

REFUSED_SOURCES = [
    ("/", "root directory"),
    ("/etc", "/etc is a host system directory"),
    ("/etc/", "/etc is a host system directory"),
    ("//etc", "/etc is a host system directory"),
    ("/etc/../etc", "/etc is a host system directory"),
    ("/etc/passwd", "/etc is a host system directory"),
    ("/proc", "/proc is"),
    ("/sys/fs/cgroup", "/sys is"),
    ("/dev", "/dev is"),
    ("/boot", "/boot is"),
    ("/root", "/root is"),
    ("/var/run/docker.sock", "socket"),
    ("/run/docker.sock", "socket"),
    ("/run/podman/podman.sock", "socket"),
    ("/var/run/podman/podman.sock", "socket"),
    ("/srv/anything/podman.sock", "socket"),
    ("/srv/podman-machine-default-api.sock", "socket"),
    ("/run", "contains the Podman/Docker socket"),
    ("/run/podman", "contains the Podman/Docker socket"),
    # Issue 15: these validated before and let a container write into the host as root.
    ("/usr", "/usr is a host system directory"),
    ("/usr/bin", "/usr is a host system directory"),
    ("/usr/local/share", "/usr is a host system directory"),
    ("/lib", "/lib is a host system directory"),
    ("/sbin", "/sbin is a host system directory"),
    ("/opt", "/opt is a host system directory"),
    ("/home", "/home is a host system directory"),
    ("/var/spool/cron", "/var is a host system directory"),
    ("/var/lib/containers", "/var is a host system directory"),
    ("/srv/models", "outside the manifest's folder, your home and policy.allowedHostPaths"),
    ("..", "outside the manifest's folder"),
    ("~", "your home directory itself"),
    ("~/", "your home directory itself"),
    ("~/.config/systemd", "~/.config is a dot-directory at the top of your home"),
    ("~/.bashrc", "~/.bashrc is a dot-directory"),
]


@pytest.mark.parametrize(("source", "reason"), REFUSED_SOURCES)
def test_sensitive_bind_sources_are_refused(tmp_path: Path, source: str, reason: str) -> None:
    """Binding host system paths or a container-engine socket is refused, naming why and the fix."""
    issues = check(workload(tmp_path, volumes=["models:/models", f"{source}:/data:ro"]))
    only(issues, "$.spec.volumes[1]", reason)
    assert "spec.policy.allowPrivileged: true" in issues[0].message


@pytest.mark.parametrize(("source", "reason"), REFUSED_SOURCES)
def test_allow_privileged_lifts_bind_source_rules(tmp_path: Path, source: str, reason: str) -> None:
    """allowPrivileged lifts every sensitive-source rule (the SPEC lists them all under it)."""
    assert check(workload(tmp_path, volumes=[f"{source}:/data"]), allow=True) == []


def test_home_ssh_is_refused(tmp_path: Path, home: Path) -> None:
    """~/.ssh and everything below it is refused, however it is spelled."""
    (home / ".ssh").mkdir(parents=True)
    for source in ("~/.ssh", "~/.ssh/id_ed25519", f"{home}/.ssh", "~/x/../.ssh"):
        issues = check(workload(tmp_path, volumes=[f"{source}:/k"]))
        only(issues, "$.spec.volumes[0]", "~/.ssh is a dot-directory at the top of your home")
    assert check(workload(tmp_path, volumes=["~/models:/models"])) == []


def test_home_dot_directory_is_refused_even_from_a_manifest_in_home(home: Path) -> None:
    """A manifest kept in the home itself does not make ./.ssh or . (the home) bindable."""
    for source in ("./.ssh", ".", "./.config/x"):
        issues = check(workload(home, volumes=[f"{source}:/k"]))
        assert len(issues) == 1 and "home" in issues[0].message, issues
    assert check(workload(home, volumes=["./models:/m"])) == []


def test_manifest_inside_a_home_dot_directory_binds_its_own_files(home: Path) -> None:
    """~/.config/podform/stack.yaml may bind ./data, but not its sibling ~/.config/other."""
    folder = home / ".config" / "podform"
    folder.mkdir(parents=True)
    assert check(workload(folder, volumes=["./data:/d"])) == []
    only(check(workload(folder, volumes=["../other:/o"])), "$.spec.volumes[0]", "~/.config")


def test_symlink_out_of_home_is_judged_by_its_target(tmp_path: Path, home: Path) -> None:
    """A link inside the home pointing at /usr/bin is refused like /usr/bin itself."""
    (home / "tools").symlink_to("/usr/bin")
    issues = check(workload(tmp_path, volumes=["~/tools:/t"]))
    only(issues, "$.spec.volumes[0]", "/usr is a host system directory")


def stack(base_dir: Path, *paths: str) -> Document:
    spec = {"policy": {"allowedHostPaths": list(paths)}}
    return Document(
        file="s.yaml",
        index=0,
        data={"apiVersion": "podform/v1", "kind": "Stack", "metadata": {"name": "s"}, "spec": spec},
        base_dir=base_dir,
    )


def test_allowed_host_paths_admit_folders_outside_the_defaults(tmp_path: Path) -> None:
    """policy.allowedHostPaths admits binds below its entries (absolute or relative), nothing more."""
    models = tmp_path / "srv" / "models"
    models.mkdir(parents=True)
    folder = tmp_path / "deploy"
    folder.mkdir()
    docs = [
        stack(folder, str(models), "../shared"),
        workload(folder, volumes=[f"{models}/llama:/m", "../shared/x:/s", "../other:/o"]),
    ]
    issues = check_policy(docs, allow_privileged=False)
    assert [i.json_path for i in issues] == ["$.spec.volumes[2]"], issues
    assert "allowedHostPaths" in issues[0].message


def test_allowed_host_paths_cannot_admit_sockets_or_root(tmp_path: Path) -> None:
    """Listing / is an error, and a socket under a listed folder is still refused."""
    docs = [
        stack(tmp_path, "/", "/run"),
        workload(tmp_path, volumes=["/run/podman/podman.sock:/s", "/run/x:/x"]),
    ]
    issues = check_policy(docs, allow_privileged=False)
    assert [i.json_path for i in issues] == [
        "$.spec.policy.allowedHostPaths[0]",
        "$.spec.volumes[0]",
    ], issues
    assert "allowPrivileged" in issues[0].message and "socket" in issues[1].message


def test_machine_volume_targets_are_bindable_by_its_workloads(tmp_path: Path) -> None:
    """A workload on machine gpu may bind /models when gpu mounts a volume there; others may not."""
    machine = doc(
        tmp_path, "Machine", {"volumes": ["~/models:/models:ro", "/srv/data"]}, name="gpu"
    )
    on_gpu = workload(tmp_path, machine="gpu", volumes=["/models/m:/m", "/srv/data/x:/d"])
    elsewhere = workload(tmp_path, volumes=["/models/m:/m"])
    assert check_policy([machine, on_gpu], allow_privileged=False) == []
    issues = check_policy([machine, elsewhere], allow_privileged=False)
    assert [i.json_path for i in issues] == ["$.spec.volumes[0]"]


def test_runtime_dir_socket_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rootless socket under $XDG_RUNTIME_DIR, and the directory holding it, are refused."""
    runtime = tmp_path / "xdg"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    for source in (f"{runtime}/podman/podman.sock", f"{runtime}/podman", str(runtime)):
        only(check(workload(tmp_path, volumes=[f"{source}:/s"])), "$.spec.volumes[0]", "socket")


def test_symlink_to_system_directory_is_refused(tmp_path: Path) -> None:
    """A bind source that is a symlink into /etc is judged by where it points."""
    (tmp_path / "data").symlink_to("/etc")
    only(check(workload(tmp_path, volumes=["./data:/data"])), "$.spec.volumes[0]", "/etc is")


@pytest.mark.parametrize(
    "volume", ["./data:/data", "./data:/data:ro", ".:/src", "data:/data", "models:/m:ro", "/cache"]
)
def test_ordinary_volumes_pass(tmp_path: Path, volume: str) -> None:
    """Paths inside the manifest's folder, named and anonymous volumes need no privilege."""
    (tmp_path / "data").mkdir()
    assert check(workload(tmp_path, volumes=[volume])) == []


def test_checkout_below_a_system_directory_may_bind_its_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository living under a protected directory binds its own files, not its neighbours."""
    system = tmp_path / "sysdir"
    repo = system / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "data").mkdir()
    monkeypatch.setattr(policy, "SYSTEM_DIRS", (str(system),))
    assert check(workload(repo, volumes=["./data:/data"])) == []
    only(check(workload(repo, volumes=["../other:/o"])), "$.spec.volumes[0]", "system directory")
    (repo / "escape").symlink_to(system)
    only(check(workload(repo, volumes=["./escape:/o"])), "$.spec.volumes[0]", "system directory")


def test_relabelling_a_protected_path_is_refused_even_when_privileged(tmp_path: Path) -> None:
    """:z/:Z on a protected host path would relabel the host's own files: never allowed."""
    for volume in ("/etc:/etc:Z", "/root:/r:ro,z", "/usr/share:/u:z", "~:/h:Z"):
        issues = check(workload(tmp_path, volumes=[volume]), allow=True)
        only(issues, "$.spec.volumes[0]", "relabelling")
    assert check(workload(tmp_path, volumes=["./data:/data:Z"])) == []


@pytest.mark.parametrize("target", ["/", "/proc", "/proc/sys", "/sys", "/sys/fs/cgroup", "//proc"])
def test_mount_over_kernel_interfaces_in_container_is_refused(tmp_path: Path, target: str) -> None:
    """Mounting over /, /proc or /sys inside the container is refused even when privileged."""
    issues = check(workload(tmp_path, volumes=[f"./data:{target}"]), allow=True)
    only(issues, "$.spec.volumes[0]", f"mounting over {target}")


def test_mount_targets_that_only_look_alike_pass(tmp_path: Path) -> None:
    """/procfs or /system are ordinary directories, not the kernel interfaces."""
    assert check(workload(tmp_path, volumes=["./a:/procfs", "./b:/system"])) == []


@pytest.mark.parametrize(
    ("volume", "fragment"),
    [("-v:/d", "volume name"), ("a;id:/d", "volume name"), ("a:b:c:d", "expected")],
)
def test_malformed_volume_entries_are_refused(tmp_path: Path, volume: str, fragment: str) -> None:
    """A volume name Podman would not accept, or too many fields, is refused."""
    only(check(workload(tmp_path, volumes=[volume])), "$.spec.volumes[0]", fragment)


# --- devices ---------------------------------------------------------------------------------

# (entry, message fragment, still refused with allowPrivileged)
REFUSED_DEVICES = [
    ("/etc/shadow", "must be under /dev", True),
    ("/dev/../etc/shadow", "must be under /dev", True),
    ("/dev", "must be under /dev", True),
    ("/dev/mem", "memory", True),
    ("//dev/mem", "memory", True),
    ("/dev/./kmem", "memory", True),
    ("/dev/port", "memory", True),
    ("/dev/zero:/etc/x", "container path /etc/x must be under /dev", True),
    ("/dev/zero:/dev/x:rwx", "expected", True),
    ("nvidia.com/gpu=0;rm", "CDI", True),
    ("nvidia.com/gpu=$(id)", "CDI", True),
    ("nvidia.com/gpu", "CDI", True),
    ("/dev/sda", "block devices", False),
    ("/dev/sdb1", "block devices", False),
    ("/dev/nvme0n1", "block devices", False),
    ("/dev/vda", "block devices", False),
    ("/dev/xvda1", "block devices", False),
    ("/dev/hda", "block devices", False),
    ("/dev/mmcblk0p1", "block devices", False),
    ("/dev/loop0", "block devices", False),
    ("/dev/dm-0", "block devices", False),
    ("/dev/md0", "block devices", False),
    ("/dev/disk/by-id/usb-x", "block devices", False),
    ("/dev/mapper/root", "block devices", False),
]


@pytest.mark.parametrize(("entry", "fragment", "always"), REFUSED_DEVICES)
def test_dangerous_devices_are_refused(
    tmp_path: Path, entry: str, fragment: str, always: bool
) -> None:
    """Device paths outside /dev, memory devices, disks and malformed CDI names are refused."""
    mapping = doc(tmp_path, "DeviceMapping", {"devices": ["/dev/dri", entry]})
    only(check(mapping), "$.spec.devices[1]", fragment)


@pytest.mark.parametrize(("entry", "fragment", "always"), REFUSED_DEVICES)
def test_allow_privileged_lifts_only_block_devices(
    tmp_path: Path, entry: str, fragment: str, always: bool
) -> None:
    """allowPrivileged grants raw disks but never memory devices, paths outside /dev or bad CDI names."""
    issues = check(doc(tmp_path, "DeviceMapping", {"devices": [entry]}), allow=True)
    assert bool(issues) is always, issues


@pytest.mark.parametrize(
    "entry",
    [
        "/dev/dri",
        "/dev/kfd",
        "/dev/nvidia0",
        "/dev/zero:/dev/dri/renderD128",
        "/dev/zero:/dev/x:rw",
        "nvidia.com/gpu=all",
        "nvidia.com/gpu=0",
        "amd.com/gpu=GPU-1:2",
    ],
)
def test_gpu_devices_pass(tmp_path: Path, entry: str) -> None:
    """GPU device paths and well-formed CDI names need no privilege."""
    assert check(doc(tmp_path, "DeviceMapping", {"devices": [entry]})) == []


@pytest.mark.skipif(not os.path.islink("/dev/fd"), reason="needs the /dev/fd -> /proc symlink")
def test_device_symlink_leaving_dev_is_refused(tmp_path: Path) -> None:
    """A /dev entry that is a symlink out of /dev (here /dev/fd -> /proc/self/fd) is refused."""
    only(check(workload(tmp_path, devices=["/dev/fd"]), allow=True), "$.spec.devices[0]", "symlink")


def test_block_device_with_innocent_name_is_refused(tmp_path: Path) -> None:
    """A block device node is refused by what it is, not only by its name."""
    node = Path("/dev/shm") / f"podform-test-blk-{os.getpid()}"
    try:
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    except OSError as error:
        pytest.skip(f"cannot create a block device node here: {error}")
    try:
        only(check(workload(tmp_path, devices=[str(node)])), "$.spec.devices[0]", "block devices")
    finally:
        node.unlink()


def test_workload_inline_devices_are_checked_by_kind(tmp_path: Path) -> None:
    """Inline workload devices are judged as paths, CDI names or DeviceMapping names."""
    entries = ["apple-gpu", "/dev/sda", "nvidia.com/gpu=$(id)", "Bad_Name", "/dev/dri"]
    issues = check(workload(tmp_path, devices=entries))
    assert [i.json_path for i in issues] == [f"$.spec.devices[{n}]" for n in (1, 2, 3)]
    assert "device mapping 'Bad_Name' is not a valid name" in issues[2].message


# --- build contexts --------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git checkout with manifests in deploy/ and a build context in llama/."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "deploy").mkdir()
    (root / "llama").mkdir()
    (root / "llama" / "Containerfile").write_text("FROM scratch\n")
    return root


def image(base_dir: Path, **build: Any) -> Document:
    return doc(base_dir, "Image", {"build": build})


@pytest.mark.parametrize(
    ("build", "json_path", "fragment"),
    [
        ({"context": "../../"}, "$.spec.build.context", "must stay inside the git repository"),
        ({"context": "/"}, "$.spec.build.context", "must stay inside the git repository"),
        ({"context": "/etc"}, "$.spec.build.context", "must stay inside"),
        ({"context": "./x"}, "$.spec.build.context", "build context ./x does not exist"),
        ({"context": "../llama/Containerfile"}, "$.spec.build.context", "is not a directory"),
        ({"context": "../deploy"}, "$.spec.build.context", "has no Containerfile or Dockerfile"),
        (
            {"context": "../llama", "containerfile": "../x"},
            "$.spec.build.containerfile",
            "must stay inside the build context",
        ),
        (
            {"context": "../llama", "containerfile": "/etc/passwd"},
            "$.spec.build.containerfile",
            "must stay inside the build context",
        ),
        (
            {"context": "../llama", "containerfile": "Dockerfile"},
            "$.spec.build.containerfile",
            "does not exist",
        ),
    ],
)
def test_build_context_must_stay_inside_the_repository(
    repo: Path, build: dict[str, Any], json_path: str, fragment: str
) -> None:
    """Contexts and Containerfiles that leave the repository or do not exist are refused."""
    issues = check(image(repo / "deploy", **build), allow=True)
    only(issues, json_path, fragment)


def test_build_context_inside_repository_passes(repo: Path) -> None:
    """A context elsewhere in the same repository, with an in-context symlink, is fine."""
    (repo / "llama" / "alias").symlink_to("Containerfile")
    assert check(image(repo / "deploy", context="../llama", containerfile="Containerfile")) == []
    assert check(image(repo, context="llama")) == []


def test_outside_git_the_manifest_folder_bounds_the_context(tmp_path: Path) -> None:
    """Without a repository the context must stay inside the manifest's folder."""
    folder = tmp_path / "plain"
    (folder / "ctx").mkdir(parents=True)
    (folder / "ctx" / "Containerfile").write_text("FROM scratch\n")
    assert check(image(folder, context="./ctx")) == []
    only(check(image(folder, context="..")), "$.spec.build.context", "manifest's folder")


def test_a_dockerfile_alone_is_the_default_containerfile(repo: Path) -> None:
    """Without spec.build.containerfile, a context holding only a Dockerfile is fine."""
    (repo / "llama" / "Containerfile").rename(repo / "llama" / "Dockerfile")
    assert check(image(repo, context="llama")) == []


def test_context_that_is_a_symlink_out_of_the_repository_is_refused(repo: Path) -> None:
    """A context directory that is itself a symlink leaving the repository is refused."""
    (repo / "deploy" / "ctx").symlink_to("/etc")
    only(check(image(repo / "deploy", context="./ctx")), "$.spec.build.context", "must stay inside")


def test_symlink_leaving_the_context_is_refused_without_leaking_content(
    repo: Path, tmp_path: Path
) -> None:
    """A symlink out of the context is named, but neither its target's content nor path is shown."""
    sentinel = "SENTINEL-7f3a-do-not-print"
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    (secret_dir / "id_rsa").write_text(sentinel)
    (repo / "llama" / "key").symlink_to(secret_dir / "id_rsa")
    (repo / "llama" / "sub").mkdir()
    (repo / "llama" / "sub" / "dir").symlink_to(secret_dir)
    (repo / "llama" / "up").symlink_to("..")  # inside the repository, but outside the context
    issues = check(image(repo / "deploy", context="../llama"))
    messages = sorted(i.message for i in issues)
    assert messages == [
        f"symlink {link} in build context ../llama points outside the build context"
        for link in ("key", "sub/dir", "up")
    ]
    assert all(i.json_path == "$.spec.build.context" for i in issues)
    assert not any(sentinel in str(i) or str(secret_dir) in str(i) for i in issues)


def test_huge_build_context_is_refused(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The symlink walk is bounded: past the limit the context is refused, not walked on."""
    monkeypatch.setattr(policy_files, "MAX_CONTEXT_ENTRIES", 5)
    for n in range(10):
        (repo / "llama" / f"f{n}").write_text("x")
    only(check(image(repo, context="llama")), "$.spec.build.context", "has more than 5 files")


def test_git_directory_does_not_count_towards_the_bound(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A context at the repository root is not refused for the objects inside .git."""
    monkeypatch.setattr(policy_files, "MAX_CONTEXT_ENTRIES", 5)
    for n in range(10):
        (repo / ".git" / f"obj{n}").write_text("x")
    assert check(image(repo, context=".", containerfile="llama/Containerfile")) == []


def test_context_limit_is_twenty_thousand_entries() -> None:
    """The default bound on a build context walk is 20000 entries."""
    assert policy_files.MAX_CONTEXT_ENTRIES == 20_000


# --- names and labels ------------------------------------------------------------------------

BAD_NAMES = [
    "web\n",
    "--help",
    "-rf",
    "a;id",
    "Ωmega",
    "",
    "a" * 64,
    "../x",
    "a/b",
    "a\\b",
    "a b",
    "$(id)",
    "`id`",
    "Web",
    "web-",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_metadata_names_are_refused(tmp_path: Path, name: str) -> None:
    """Names are checked with fullmatch, so trailing newlines and option-like names are refused."""
    document = doc(tmp_path, "Workload", {"image": "busybox:1"}, name=name)
    only(check(document, allow=True), "$.metadata.name", f"{name!r} is not a valid name")


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [("Machine", "a" * 30, True), ("Machine", "a" * 31, False), ("Workload", "a" * 63, True)],
)
def test_name_length_limits(tmp_path: Path, kind: str, name: str, ok: bool) -> None:
    """Names may have 63 characters, Machine names 30."""
    assert (check(doc(tmp_path, kind, {}, name=name)) == []) is ok


@pytest.mark.parametrize(
    ("kind", "spec", "json_path"),
    [
        ("Workload", {"image": "x", "machine": "Gpu"}, "$.spec.machine"),
        ("Image", {"machine": "g" * 31}, "$.spec.machine"),
        ("Workload", {"image": "bad;name"}, "$.spec.image"),
        ("Workload", {"image": "x", "dependsOn": ["db\n"]}, "$.spec.dependsOn[0]"),
        ("Workload", {"image": "x", "dependsOn": [{"name": "--x"}]}, "$.spec.dependsOn[0].name"),
        ("Workload", {"image": "x", "secrets": [{"name": "a;b"}]}, "$.spec.secrets[0].name"),
        (
            "Workload",
            {"image": "x", "secrets": [{"name": "-t", "env": "T"}]},
            "$.spec.secrets[0].name",
        ),
    ],
)
def test_invalid_name_references_are_refused(
    tmp_path: Path, kind: str, spec: dict[str, Any], json_path: str
) -> None:
    """References to machines, images, dependencies and secrets are checked like names."""
    only(check(doc(tmp_path, kind, spec), allow=True), json_path, "not a valid")


def test_valid_references_pass(tmp_path: Path) -> None:
    """Full image references, secret names Podman accepts and well-formed names pass."""
    spec = {
        "image": "docker.io/library/busybox:1.36",
        "machine": "gpu",
        "dependsOn": ["db", {"name": "cache", "condition": "healthy"}],
        "secrets": [{"name": "HF_token.v2", "env": "HF_TOKEN"}],
    }
    assert check(doc(tmp_path, "Workload", spec)) == []


@pytest.mark.parametrize("key", ["io.podform.stack", "io.podform.spec-hash", "IO.Podform.x"])
def test_reserved_labels_are_refused(tmp_path: Path, key: str) -> None:
    """Manifests may not set io.podform.* labels, which podform uses to recognise its objects;
    the path quotes the dotted key as schema errors do."""
    document = doc(tmp_path, "Workload", {"image": "x"}, labels={"team": "ml", key: "v"})
    only(check(document, allow=True), f"$.metadata.labels['{key}']", "reserved for podform")


def test_other_labels_pass(tmp_path: Path) -> None:
    """Labels outside the io.podform. prefix are the user's."""
    labels = {"team": "ml", "podform.io/x": "y", "io.podformer.z": "w"}
    assert check(doc(tmp_path, "Workload", {"image": "x"}, labels=labels)) == []


def test_issues_from_every_document_are_reported(tmp_path: Path) -> None:
    """Checking never stops at the first bad document."""
    docs = [workload(tmp_path, privileged=True), doc(tmp_path, "Machine", {}, name="Gpu")]
    issues = check_policy(docs, allow_privileged=False)
    assert [i.subject for i in issues] == ['Workload "web"', 'Machine "Gpu"']


# --- helpers ---------------------------------------------------------------------------------


def test_normalize_host_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Host paths expand ~, resolve against the base, collapse // and .., and follow symlinks."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert normalize_host_path("~/m", Path("/x")) == tmp_path / "home" / "m"
    assert normalize_host_path("./a/../b", tmp_path) == tmp_path / "b"
    assert normalize_host_path("//etc/", tmp_path) == Path(os.path.realpath("/etc"))
    assert normalize_host_path("link/f", tmp_path) == tmp_path / "real" / "f"


def test_find_repo_root(tmp_path: Path) -> None:
    """The nearest directory holding .git (directory or file) wins; none outside a checkout."""
    (tmp_path / "outer" / ".git").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "deep").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / ".git").write_text("gitdir: elsewhere\n")
    assert find_repo_root(tmp_path / "outer" / "inner" / "deep") == tmp_path / "outer" / "inner"
    assert find_repo_root(tmp_path / "outer") == tmp_path / "outer"
    assert find_repo_root(tmp_path) is None


@pytest.mark.parametrize(
    ("source", "is_path"),
    [
        ("/data", True),
        ("./data", True),
        ("../data", True),
        ("~/models", True),
        ("~", True),
        (".", True),
        ("models", False),
        ("my.vol", False),
        ("data/x", False),
    ],
)
def test_is_bind_source(source: str, is_path: bool) -> None:
    """A volume source is a path when it looks like one; anything else names a volume."""
    assert is_bind_source(source) is is_path


def test_host_path_error_names_file_line_col_and_the_rule(tmp_path: Path) -> None:
    """A refused bind read from a file is reported at its file:line:col with the rule spelled out."""
    from reconciler.errors import InvalidInput
    from reconciler.manifests.builder import build_desired
    from reconciler.manifests.loader import load_manifests

    manifest = tmp_path / "stack.yaml"
    manifest.write_text(
        "apiVersion: podform/v1\nkind: Workload\nmetadata: {name: web}\n"
        "spec:\n  image: busybox:latest\n  volumes:\n    - /usr/local/share:/s\n"
    )
    with pytest.raises(InvalidInput) as caught:
        build_desired(load_manifests([str(manifest)]))
    (issue,) = caught.value.issues
    assert str(issue).startswith(f'{manifest}:7:7: Workload "web": $.spec.volumes[0]: ')
    assert "/usr is a host system directory" in issue.message
    assert "allowedHostPaths" in issue.message and "allowPrivileged" in issue.message

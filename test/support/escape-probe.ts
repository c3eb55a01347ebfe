/**
 * What a hostile agent tries from inside its sandbox, as the command it would run (python3 is in
 * every sandbox's view of /usr). It prints one JSON object: for each escape, what happened. The
 * kernel's answer decides: EPERM means the call was refused before it did anything; any other
 * answer (success, or an error about the arguments) means the call reached what it was aimed at.
 *
 * argv[1] is a JSON object: { ports: {name: port} on the host's loopback, paths: {name: path} on
 * the host, write: a host folder to create a file in }.
 */
export const ESCAPE_PROBE = String.raw`
import ctypes, errno, json, os, socket, sys
t = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
out = {"syscalls": {}, "sockets": {}, "ports": {}, "paths": {}}

def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    return "refused" if r < 0 and e == errno.EPERM else ("reached" if r >= 0 else "reached:" + errno.errorcode.get(e, str(e)))

ws = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
handle = ctypes.create_string_buffer(b"\x08\x00\x00\x00\x01\x00\x00\x00" + b"\x02\x00\x00\x00\x00\x00\x00\x00")
mount_id = ctypes.c_int(0)
nth = libc.syscall(ctypes.c_long(303), ctypes.c_long(-100), ctypes.c_char_p(b"/"), handle, ctypes.byref(mount_id), ctypes.c_long(0))
e = ctypes.get_errno()
out["syscalls"]["name_to_handle_at"] = "refused" if nth < 0 and e == errno.EPERM else "reached"
ob = libc.syscall(ctypes.c_long(304), ctypes.c_long(ws), handle, ctypes.c_long(os.O_RDONLY | os.O_DIRECTORY))
e = ctypes.get_errno()
out["syscalls"]["open_by_handle_at"] = "refused" if ob < 0 and e == errno.EPERM else "reached"
out["syscalls"]["ptrace"] = call(101, 2, os.getppid(), 0, 0)
mnt = libc.mount(b"none", b"/nonexistent-fleet-probe", b"tmpfs", ctypes.c_ulong(0), None)
e = ctypes.get_errno()
out["syscalls"]["mount"] = "refused" if mnt < 0 and e == errno.EPERM else "reached"
out["syscalls"]["bpf"] = call(321, 5, 0, 0)
out["syscalls"]["perf_event_open"] = call(298, 0, 0, -1, -1, 0)
out["syscalls"]["init_module"] = call(175, 0, 0, 0)
out["syscalls"]["keyctl"] = call(250, 0, -3, 0)
out["syscalls"]["setns"] = call(308, -1, 0)
pid = os.fork()
if pid == 0:
    r = libc.unshare(ctypes.c_int(0x10000000))
    os._exit(0 if r == 0 else (3 if ctypes.get_errno() == errno.EPERM else 4))
_, status = os.waitpid(pid, 0)
out["syscalls"]["unshare_user"] = {0: "reached", 3: "refused"}.get(os.WEXITSTATUS(status), "reached:other")

for name, fam, typ, proto in [("packet", 17, socket.SOCK_RAW, 0), ("raw_ipv4", socket.AF_INET, socket.SOCK_RAW, 6), ("raw_ipv6", socket.AF_INET6, socket.SOCK_RAW, 6)]:
    try:
        socket.socket(fam, typ, proto).close()
        out["sockets"][name] = "reached"
    except OSError as err:
        out["sockets"][name] = "refused" if err.errno == errno.EPERM else "reached:" + errno.errorcode.get(err.errno, "?")

for name, port in t["ports"].items():
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        out["ports"][name] = "connected"
    except OSError as err:
        out["ports"][name] = "failed:" + (errno.errorcode.get(err.errno, "?") if err.errno else type(err).__name__)
    finally:
        s.close()

for name, path in t["paths"].items():
    out["paths"][name] = "present" if os.path.lexists(path) else "absent"
try:
    with open(os.path.join(t["write"], "fleet-escape-probe"), "w") as f:
        f.write("escaped")
    out["write"] = "written"
except OSError as err:
    out["write"] = "failed:" + errno.errorcode.get(err.errno, "?")

status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
out["uid"] = os.getuid()
out["gid"] = os.getgid()
out["groups"] = os.getgroups()
out["capEff"] = status["CapEff"].strip()
out["noNewPrivs"] = status["NoNewPrivs"].strip()
out["seccomp"] = status["Seccomp"].strip()
out["processes"] = len([p for p in os.listdir("/proc") if p.isdigit()])
out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
print(json.dumps(out))
`;

export interface ProbeTargets {
  ports: Record<string, number>;
  paths: Record<string, string>;
  write: string;
}

export interface ProbeReport {
  syscalls: Record<string, string>;
  sockets: Record<string, string>;
  ports: Record<string, string>;
  paths: Record<string, string>;
  write: string;
  uid: number;
  gid: number;
  groups: number[];
  capEff: string;
  noNewPrivs: string;
  seccomp: string;
  processes: number;
  interfaces: string[];
}

/** Every escape the report shows succeeding, as readable lines; empty when the sandbox held. */
export function escapes(r: ProbeReport, fleetUid: number): string[] {
  const found: string[] = [];
  if (r.uid === 0 || r.uid === fleetUid) found.push(`runs as uid ${r.uid}`);
  if (r.gid === 0) found.push("runs as gid 0");
  if (!/^0+$/.test(r.capEff)) found.push(`has capabilities ${r.capEff}`);
  if (r.noNewPrivs !== "1") found.push("may gain privileges (no_new_privs off)");
  if (r.seccomp !== "2") found.push(`no seccomp filter (mode ${r.seccomp})`);
  for (const group of ["syscalls", "sockets"] as const) {
    for (const [name, what] of Object.entries(r[group])) if (what !== "refused") found.push(`${name}: ${what}`);
  }
  for (const [name, what] of Object.entries(r.ports)) if (what === "connected") found.push(`reached host port ${name}`);
  for (const [name, what] of Object.entries(r.paths)) if (what === "present") found.push(`sees host path ${name}`);
  if (r.write === "written") found.push("wrote a file on the host");
  if (r.interfaces.some((i) => i !== "lo")) found.push(`network interfaces ${r.interfaces.join(", ")}`);
  return found;
}

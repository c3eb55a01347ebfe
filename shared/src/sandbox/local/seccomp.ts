import { arch } from "node:os";

/**
 * The seccomp filter every sandboxed process runs under (bubblewrap's --seccomp takes it as raw
 * classic BPF). It refuses the calls an agent could use to leave or look outside its sandbox, or to
 * attack the kernel, and allows the rest: a deny list, because agents run arbitrary tools.
 *
 * Refused with EPERM: file handles (open_by_handle_at opened the host's root from a workspace),
 * ptrace and cross-process memory access, every mount call, pivot_root and chroot, new namespaces
 * (unshare, setns, clone with a namespace flag), bpf and perf_event_open, kernel modules and kexec,
 * the kernel keyring, userfaultfd, io_uring, swap, reboot, hostname, I/O ports and the kernel log;
 * packet sockets, and raw or SOCK_PACKET sockets of IPv4 and IPv6 (netlink stays, glibc's
 * getifaddrs needs it). clone3 answers ENOSYS: its flags sit behind a pointer a filter cannot read,
 * and libc then falls back to clone, whose flags are checked. Another architecture's calls (i386
 * through int 0x80) kill the process; x32 calls are refused.
 */

/** x86_64 numbers; the sandbox supports no other architecture under bubblewrap. */
const DENIED: Readonly<Record<string, number>> = {
  ptrace: 101,
  syslog: 103,
  pivot_root: 155,
  chroot: 161,
  acct: 163,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  sethostname: 170,
  setdomainname: 171,
  iopl: 172,
  ioperm: 173,
  create_module: 174,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  perf_event_open: 298,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  mount_setattr: 442,
};

export const DENIED_SYSCALLS: readonly string[] = Object.keys(DENIED);

const NR_SOCKET = 41;
const NR_CLONE = 56;
const NR_CLONE3 = 435;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_PACKET = 17;
const SOCK_TYPE_MASK = 0xf;
const SOCK_RAW = 3;
const SOCK_PACKET = 10;
/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. */
const CLONE_NAMESPACES = 0x7e020000;
const EPERM = 1;
const ENOSYS = 38;

const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const retErrno = (errno: number): number => 0x00050000 | errno;

// struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8i (low 32 bits first on little endian).
const OFF_NR = 0;
const OFF_ARCH = 4;
const offArg = (i: number): number => 16 + 8 * i;

/** One classic BPF instruction; jumps name labels, resolved when the program is assembled. */
type Insn =
  | { op: "ld"; k: number }
  | { op: "and"; k: number }
  | { op: "ret"; k: number }
  | { op: "jeq" | "jge" | "jset"; k: number; yes?: string; no?: string }
  | { op: "label"; name: string };

const CODES = { ld: 0x20, and: 0x54, ret: 0x06, jeq: 0x15, jge: 0x35, jset: 0x45 } as const;

function assemble(program: readonly Insn[]): Buffer {
  const real = program.filter((i): i is Exclude<Insn, { op: "label" }> => i.op !== "label");
  const at = new Map<string, number>();
  let n = 0;
  for (const i of program) {
    if (i.op === "label") at.set(i.name, n);
    else n += 1;
  }
  const out = Buffer.alloc(real.length * 8);
  real.forEach((insn, index) => {
    const jump = (label: string | undefined): number => {
      if (label === undefined) return 0;
      const target = at.get(label);
      const offset = target === undefined ? -1 : target - index - 1;
      if (offset < 0 || offset > 255) throw new Error(`seccomp: bad jump to ${label}`);
      return offset;
    };
    const isJump = insn.op === "jeq" || insn.op === "jge" || insn.op === "jset";
    out.writeUInt16LE(CODES[insn.op], index * 8);
    out.writeUInt8(isJump ? jump(insn.yes) : 0, index * 8 + 2);
    out.writeUInt8(isJump ? jump(insn.no) : 0, index * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, index * 8 + 4);
  });
  return out;
}

/** True when this host's architecture has a filter. */
export function seccompSupported(): boolean {
  return arch() === "x64";
}

/** The filter as bubblewrap reads it from a file descriptor: `struct sock_filter[]`, no header. */
export function sandboxSeccompFilter(): Buffer {
  const deny: Insn[] = Object.values(DENIED).flatMap((nr): Insn[] => [
    { op: "jeq", k: nr, no: `after-${nr}` },
    { op: "ret", k: retErrno(EPERM) },
    { op: "label", name: `after-${nr}` },
  ]);
  return assemble([
    { op: "ld", k: OFF_ARCH },
    { op: "jeq", k: AUDIT_ARCH_X86_64, yes: "native" },
    { op: "ret", k: RET_KILL_PROCESS },
    { op: "label", name: "native" },
    { op: "ld", k: OFF_NR },
    { op: "jge", k: X32_SYSCALL_BIT, yes: "eperm" },
    ...deny,
    { op: "jeq", k: NR_CLONE3, no: "not-clone3" },
    { op: "ret", k: retErrno(ENOSYS) },
    { op: "label", name: "not-clone3" },
    { op: "jeq", k: NR_CLONE, yes: "clone" },
    { op: "jeq", k: NR_SOCKET, yes: "socket" },
    { op: "ret", k: RET_ALLOW },
    { op: "label", name: "clone" },
    { op: "ld", k: offArg(0) },
    { op: "jset", k: CLONE_NAMESPACES, yes: "eperm", no: "allow" },
    { op: "label", name: "socket" },
    { op: "ld", k: offArg(0) },
    { op: "jeq", k: AF_PACKET, yes: "eperm" },
    { op: "jeq", k: AF_INET, yes: "socket-type" },
    { op: "jeq", k: AF_INET6, yes: "socket-type", no: "allow" },
    { op: "label", name: "socket-type" },
    { op: "ld", k: offArg(1) },
    { op: "and", k: SOCK_TYPE_MASK },
    { op: "jeq", k: SOCK_RAW, yes: "eperm" },
    { op: "jeq", k: SOCK_PACKET, yes: "eperm", no: "allow" },
    { op: "label", name: "allow" },
    { op: "ret", k: RET_ALLOW },
    { op: "label", name: "eperm" },
    { op: "ret", k: retErrno(EPERM) },
  ]);
}

import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FleetError } from "../../errors/index.js";
import { readInside, writeInside } from "./files.js";

const root = realpathSync(mkdtempSync(join(tmpdir(), "files-unit-")));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function setup(name: string) {
  const base = join(root, name, "workspace");
  const outside = join(root, name, "outside");
  mkdirSync(base, { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, "target.txt"), "original");
  return { base, outside };
}

async function refused(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FleetError);
  expect((err as FleetError).retryable).toBe(false);
  expect((err as FleetError).message).toMatch(pattern);
}

describe("writeInside / readInside", () => {
  it("creates parent folders, overwrites (truncating), and reads back bytes", async () => {
    const { base } = setup("basic");
    await writeInside(base, "a/b/c.txt", "a long first version");
    await writeInside(base, "a/b/c.txt", "short");
    expect(readFileSync(join(base, "a/b/c.txt"), "utf8")).toBe("short");
    const bytes = new Uint8Array(256).map((_, i) => i);
    await writeInside(base, "bin/all.bytes", bytes);
    expect(await readInside(base, "bin/all.bytes")).toEqual(bytes);
    expect(await readInside(base, "nope.txt")).toBeNull();
    expect(await readInside(base, "no/such/dir.txt")).toBeNull();
  });

  it("follows a folder symlink that stays inside", async () => {
    const { base } = setup("inner-link");
    mkdirSync(join(base, "real"));
    symlinkSync(join(base, "real"), join(base, "alias"));
    await writeInside(base, "alias/x.txt", "via alias");
    expect(readFileSync(join(base, "real/x.txt"), "utf8")).toBe("via alias");
  });

  it("refuses a folder symlink pointing outside, creating nothing there", async () => {
    const { base, outside } = setup("outer-link");
    symlinkSync(outside, join(base, "link"));
    await refused(writeInside(base, "link/pwned.txt", "x"), /outside/);
    await refused(writeInside(base, "link/new/deeper/pwned.txt", "x"), /outside/);
    await refused(readInside(base, "link/target.txt"), /outside/);
    expect(readdirSync(outside)).toEqual(["target.txt"]);
  });

  it("never follows a symlink at the final component, even a dangling one", async () => {
    const { base, outside } = setup("final-link");
    symlinkSync(join(outside, "target.txt"), join(base, "file-link"));
    symlinkSync(join(outside, "not-yet.txt"), join(base, "dangling"));
    await refused(writeInside(base, "file-link", "x"), /symlink/);
    await refused(writeInside(base, "dangling", "x"), /symlink/);
    await refused(readInside(base, "file-link"), /symlink/);
    expect(readFileSync(join(outside, "target.txt"), "utf8")).toBe("original");
    expect(existsSync(join(outside, "not-yet.txt"))).toBe(false);
  });

  it("refuses folders and FIFOs at the final component without blocking", async () => {
    const { base } = setup("special");
    mkdirSync(join(base, "dir"));
    execFileSync("mkfifo", [join(base, "fifo")]);
    await refused(writeInside(base, "dir", "x"), /folder/);
    await refused(writeInside(base, "fifo", "x"), /special|regular/);
    await refused(readInside(base, "fifo"), /regular/);
    await refused(readInside(base, "dir"), /regular|folder/);
  });

  it("refuses a regular file used as a folder", async () => {
    const { base } = setup("notdir");
    writeFileSync(join(base, "file"), "x");
    await refused(writeInside(base, "file/child.txt", "x"), /not a folder/);
  });
});

import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

/**
 * Runs sandbox-creator.mjs (over shared/dist: build first) with `args`, waits for its report, then
 * SIGKILLs it: a fleet process that dies right after it created a sandbox and started `sleep 60`.
 */
export async function crashCreator(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ sandboxId: string; pid: number }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "sandbox-creator.mjs"), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`creator exited ${code} before reporting`)));
  });
  const report = JSON.parse(line) as { sandboxId?: string; pid?: number; error?: string };
  if (!report.sandboxId || !report.pid) throw new Error(`creator failed: ${report.error}`);
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  return { sandboxId: report.sandboxId, pid: report.pid };
}

import { FleetError } from "../errors/index.js";

/**
 * POSIX shell quoting, for sandbox APIs that only take a command string (E2B's commands.run).
 * Single quotes make everything literal except the single quote itself, which is closed, escaped
 * and reopened. Words made only of characters no shell treats specially stay bare for readability.
 */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shellQuote(word: string): string {
  if (word.includes("\0")) {
    // A C string ends at NUL: no quoting can pass one through exec, so it is refused, not truncated.
    throw new FleetError("sandbox", "command argument contains a NUL byte", { retryable: false });
  }
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** One command line that runs `command` with exactly these arguments, whatever they contain. */
export function shellCommand(command: string, args: readonly string[]): string {
  if (command.length === 0) throw new FleetError("sandbox", "empty command", { retryable: false });
  return [command, ...args].map(shellQuote).join(" ");
}

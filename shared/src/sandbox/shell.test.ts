import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { FleetError } from "../errors/index.js";
import { shellCommand, shellQuote } from "./shell.js";

/** What a real POSIX shell makes of the line: each argument printed, NUL-terminated. */
function throughShell(args: string[]): string[] {
  const out = execFileSync("/bin/sh", ["-c", shellCommand("printf", ["%s\\0", ...args])], {
    encoding: "utf8",
    env: { PATH: "/usr/bin:/bin", HOME: "/nonexistent" },
  });
  return out.split("\0").slice(0, -1);
}

const NASTY = [
  "plain",
  "with space",
  "  leading and trailing  ",
  "it's",
  "'",
  "''",
  `"double"`,
  "$(touch /tmp/pwned-by-quote-test)",
  "`touch /tmp/pwned-by-quote-test`",
  "$HOME",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion the quoting must neutralise
  "${HOME:-x}",
  "line1\nline2\n",
  "\n",
  "tab\there",
  "semi;colon && or || pipe | amp &",
  "glob * ? [a-z]",
  "~",
  "~root",
  "back\\slash\\",
  "!bang",
  "-n",
  "--",
  "#not a comment",
  "a=b",
  "unicode ✓ é 中文",
  "",
  "<redirect >out 2>&1",
  "'$(x)'\"`y`\"",
];

describe("shellQuote", () => {
  it("round-trips nasty arguments through /bin/sh unchanged and runs none of them", () => {
    expect(throughShell(NASTY)).toEqual(NASTY);
    expect(() => execFileSync("test", ["-e", "/tmp/pwned-by-quote-test"])).toThrow();
  });

  it("leaves safe words bare and quotes everything else", () => {
    expect(shellQuote("opencode")).toBe("opencode");
    expect(shellQuote("--port=4096")).toBe("--port=4096");
    expect(shellQuote("/usr/bin/env")).toBe("/usr/bin/env");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  it("quotes the command too, so a command name cannot smuggle a second command", () => {
    expect(shellCommand("echo hi; id", [])).toBe("'echo hi; id'");
  });

  it("refuses NUL bytes and empty commands instead of truncating", () => {
    expect(() => shellQuote("a\0b")).toThrow(FleetError);
    expect(() => shellCommand("", ["x"])).toThrow(FleetError);
  });
});

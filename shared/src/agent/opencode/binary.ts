import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { FleetError } from "../../errors/index.js";

/**
 * Where the OpenCode binary is. `opencode-ai` ships it in a platform package
 * (`opencode-<os>-<arch>[-baseline]`) and links it from a postinstall script, which does not run
 * under `npm ci --ignore-scripts`; so the platform package is resolved here directly.
 */
export function resolveOpencodeBinary(
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): string {
  const os = platform === "darwin" ? "darwin" : platform === "linux" ? "linux" : undefined;
  if (!os || (arch !== "x64" && arch !== "arm64")) {
    throw new FleetError("config", `no OpenCode binary for ${platform}-${arch}; pass the binary path explicitly`);
  }
  const base = `opencode-${os}-${arch}`;
  // The regular x64 build needs AVX2; the baseline build runs anywhere (a little slower).
  // Without AVX2 only the baseline build will do; with it, the baseline is a fallback.
  const candidates = arch !== "x64" ? [base] : hasAvx2(platform) ? [base, `${base}-baseline`] : [`${base}-baseline`];
  const require = createRequire(import.meta.url);
  for (const name of candidates) {
    try {
      return join(dirname(require.resolve(`${name}/package.json`)), "bin", "opencode");
    } catch {
      // not installed; try the next
    }
  }
  throw new FleetError("config", `OpenCode platform package not installed (looked for ${candidates.join(", ")})`);
}

function hasAvx2(platform: NodeJS.Platform): boolean {
  if (platform !== "linux") return true; // darwin x64 machines of OpenCode's support range have it
  try {
    return /\bavx2\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
}

import type { Logger } from "../../log/index.js";
import type { AgentClient, AgentEndpoint, AgentLaunchOptions, AgentRuntime } from "../port.js";
import type { CommandSpec, SandboxFile } from "../../sandbox/port.js";
import { resolveOpencodeBinary } from "./binary.js";
import { OpencodeAgentClient, type OpencodeClientOptions } from "./client.js";
import { opencodeEnv, opencodeHomeFiles } from "./config.js";

export interface OpencodeRuntimeConfig {
  /** Path of the `opencode` binary inside the sandbox; default: the platform package's on this host. */
  binary?: string;
  /**
   * Interface the server binds inside the sandbox. Loopback by default: a local sandbox shares the
   * host's loopback. A provider that reaches the port through its own proxy from outside the
   * sandbox's loopback (E2B) needs "0.0.0.0"; the password still guards every route.
   */
  hostname?: string;
  logger: Logger;
  client?: OpencodeClientOptions;
}

/** OpenCode 1.x as the fleet's agent server. */
export function opencodeRuntime(config: OpencodeRuntimeConfig): AgentRuntime {
  let binary = config.binary;
  return {
    name: "opencode",
    launchCommand(options: AgentLaunchOptions): CommandSpec {
      binary ??= resolveOpencodeBinary();
      return {
        command: binary,
        args: ["serve", "--port", String(options.port), "--hostname", config.hostname ?? "127.0.0.1"],
        envs: opencodeEnv(options),
      };
    },
    homeFiles(): SandboxFile[] {
      return opencodeHomeFiles();
    },
    connect(endpoint: AgentEndpoint): AgentClient {
      return new OpencodeAgentClient(endpoint, config.logger, config.client);
    },
  };
}

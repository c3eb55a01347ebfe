import { pino, type Logger, type DestinationStream, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

/**
 * Paths whose values never reach a log line, wherever they appear in a logged object.
 * Services log child loggers with `{ sessionId, sandboxId }`; secrets travel in fields with these names.
 */
export const REDACTED_PATHS = [
  "password",
  "*.password",
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "secret",
  "*.secret",
  "uri",
  "*.uri",
  "mongoUri",
  "*.mongoUri",
  "env",
  "*.env",
];

export interface LoggerOptions {
  name: string;
  level?: LevelWithSilent;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      base: { service: options.name, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}

/** Strips credentials from a connection URL so it can be shown or logged. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = u.username ? "***" : "";
      u.password = u.password ? "***" : "";
    }
    return u.toString();
  } catch {
    return "[unparsable url]";
  }
}

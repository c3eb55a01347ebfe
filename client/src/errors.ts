/** The api answered with an error: its HTTP status and the fleet's error code (docs/api.md, Errors). */
export class FleetApiError extends Error {
  override readonly name = "FleetApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues?: unknown[],
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** The fleet could not be reached (network, a stream that kept breaking off, a bus request without answer). */
export class FleetUnreachable extends Error {
  override readonly name = "FleetUnreachable";
}

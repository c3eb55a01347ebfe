export { FleetBusClient, type BusSubmitInput, type FleetBusClientOptions, type TerminalEvent } from "./bus.js";
export { FleetApiError, FleetUnreachable } from "./errors.js";
export {
  FleetHttpClient,
  type FleetHttpClientOptions,
  type FollowEvent,
  type FollowOptions,
  type SubmitInput,
} from "./http.js";
export * from "./contracts/index.js";

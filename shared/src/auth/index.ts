export { apiKeyId, ApiKeyRecord, keyReaches, newApiKey, verifyApiKey } from "./api-keys.js";
export {
  CallbackKey,
  CallbackKeys,
  type CallbackTokenConfig,
  mintCallbackToken,
  verifyCallbackToken,
} from "./callback-tokens.js";
export {
  GATEWAY_AUDIENCE,
  GatewayClaims,
  type GatewayGrant,
  type GatewayTokenConfig,
  mintGatewayToken,
  mintPoolGatewayToken,
  pooledSandboxOf,
  POOL_TOKEN_PREFIX,
  verifyGatewayToken,
} from "./gateway-tokens.js";

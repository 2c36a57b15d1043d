/**
 * CSRF tokens: one per client, valid until `expiration`.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";

export interface CsrfToken {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  token: string;
  client: string;
  expiration: Timestamp;
}

export const CsrfTokenOptions = z.strictObject({
  /** How long the token is valid (Prefect's `server.api.csrf_token_expiration`, one hour by default). */
  expires_in_seconds: z.number().positive().default(3600),
});
export type CsrfTokenOptions = z.input<typeof CsrfTokenOptions>;

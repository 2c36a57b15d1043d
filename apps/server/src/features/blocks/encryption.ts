/**
 * Block document data encrypted at rest as Prefect does: a Fernet token (the `cryptography` package's
 * format: version byte 0x80, 64-bit big-endian timestamp, 128-bit IV, AES-128-CBC with PKCS#7 padding,
 * HMAC-SHA256 over all of that, the whole URL-safe base64 with padding) of `json.dumps(data)`.
 *
 * The key is PREFECT_SERVER_ENCRYPTION_KEY when set; otherwise one generated once and kept in the
 * `configuration` table under ENCRYPTION_KEY as `{"fernet_key": "..."}`, where Prefect keeps it, so
 * Prefect's server can read our blocks and we can read its own.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Database } from "@prefect/db";
import { pythonJsonDumps } from "../../prefect/json.js";

const VERSION = 0x80;
const KEY_PATTERN = /^[A-Za-z0-9_\-+/]{43}=?$/;

export class InvalidFernetKeyError extends Error {}

/** A token that this key did not make, or that was altered (cryptography's `InvalidToken`). */
export class InvalidTokenError extends Error {
  constructor() {
    super("The block data could not be decrypted with the configured key.");
  }
}

export class Fernet {
  readonly #signingKey: Buffer;
  readonly #encryptionKey: Buffer;

  /** `key`: 32 bytes in URL-safe base64, as `Fernet.generate_key()` makes them. */
  constructor(key: string) {
    const bytes = KEY_PATTERN.test(key.trim()) ? Buffer.from(key.trim(), "base64") : Buffer.alloc(0);
    if (bytes.length !== 32) throw new InvalidFernetKeyError("Fernet key must be 32 url-safe base64-encoded bytes.");
    this.#signingKey = bytes.subarray(0, 16);
    this.#encryptionKey = bytes.subarray(16, 32);
  }

  static generateKey(): string {
    return `${randomBytes(32).toString("base64url")}=`;
  }

  encrypt(plaintext: Buffer, at: Date = new Date(), iv: Buffer = randomBytes(16)): string {
    const cipher = createCipheriv("aes-128-cbc", this.#encryptionKey, iv);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const header = Buffer.alloc(9);
    header[0] = VERSION;
    header.writeBigUInt64BE(BigInt(Math.floor(at.getTime() / 1000)), 1);
    const signed = Buffer.concat([header, iv, ciphertext]);
    const mac = createHmac("sha256", this.#signingKey).update(signed).digest();
    return base64UrlWithPadding(Buffer.concat([signed, mac]));
  }

  decrypt(token: string): Buffer {
    if (!/^[A-Za-z0-9_\-=]+$/.test(token)) throw new InvalidTokenError();
    const data = Buffer.from(token, "base64url");
    // 1 version + 8 timestamp + 16 IV + at least one 16-byte block + 32 HMAC.
    if (data.length < 73 || data[0] !== VERSION || (data.length - 57) % 16 !== 0) throw new InvalidTokenError();
    const signed = data.subarray(0, data.length - 32);
    const mac = createHmac("sha256", this.#signingKey).update(signed).digest();
    if (!timingSafeEqual(mac, data.subarray(data.length - 32))) throw new InvalidTokenError();
    try {
      const decipher = createDecipheriv("aes-128-cbc", this.#encryptionKey, data.subarray(9, 25));
      return Buffer.concat([decipher.update(data.subarray(25, data.length - 32)), decipher.final()]);
    } catch {
      throw new InvalidTokenError();
    }
  }
}

function base64UrlWithPadding(bytes: Buffer): string {
  const text = bytes.toString("base64url");
  return text + "=".repeat((4 - (text.length % 4)) % 4);
}

/** `json.dumps(data)` encrypted: what Prefect stores in `block_document.data`. */
export function encryptData(fernet: Fernet, data: unknown): string {
  return fernet.encrypt(Buffer.from(pythonJsonDumps(data), "utf8"));
}

export function decryptData(fernet: Fernet, token: string): unknown {
  return JSON.parse(fernet.decrypt(token).toString("utf8"));
}

export const ENCRYPTION_KEY_CONFIGURATION = "ENCRYPTION_KEY";

/**
 * The server's Fernet: from the setting, else from the database, generating and storing a key on
 * first use. Concurrent first uses (this server or another over the same database) all end up with
 * the key that was stored first. Resolve it outside transactions, so that a rolled-back request
 * cannot take a key with it that this server has already used.
 */
export function fernetProvider(db: Database, configuredKey: string | undefined): () => Promise<Fernet> {
  if (configuredKey) {
    let fernet: Fernet;
    try {
      fernet = new Fernet(configuredKey);
    } catch (error) {
      throw new InvalidFernetKeyError(`Invalid setting: PREFECT_SERVER_ENCRYPTION_KEY ${(error as Error).message}`);
    }
    return async () => fernet;
  }
  let resolved: Promise<Fernet> | undefined;
  const resolve = async (): Promise<Fernet> => {
    const stored = await db.configuration.setIfAbsent(ENCRYPTION_KEY_CONFIGURATION, { fernet_key: Fernet.generateKey() });
    const key = typeof stored === "object" && stored !== null ? (stored as { fernet_key?: unknown }).fernet_key : undefined;
    if (typeof key !== "string") throw new InvalidFernetKeyError(`The ${ENCRYPTION_KEY_CONFIGURATION} configuration holds no fernet_key.`);
    return new Fernet(key);
  };
  return () => {
    resolved ??= resolve().catch((error: unknown) => {
      resolved = undefined;
      throw error;
    });
    return resolved;
  };
}

const serverKeys = new WeakMap<object, () => Promise<Fernet>>();

/**
 * The server's Fernet (see fernetProvider), one per server context. A malformed
 * PREFECT_SERVER_ENCRYPTION_KEY is refused on the first call, which the block routes make while the
 * server starts.
 */
export function serverFernet(context: { readonly db: Database; readonly settings: { readonly encryptionKey: string | undefined } }): () => Promise<Fernet> {
  let provider = serverKeys.get(context);
  if (!provider) {
    provider = fernetProvider(context.db, context.settings.encryptionKey);
    serverKeys.set(context, provider);
  }
  return provider;
}

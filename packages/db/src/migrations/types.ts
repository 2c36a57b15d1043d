/** A migration folder from prisma/<provider>/migrations, embedded in the package at build time. */
export interface EmbeddedMigration {
  /** Folder name, `<timestamp>_<description>`, exactly as Prisma Migrate names it. */
  readonly name: string;
  /** SHA-256 (hex) of migration.sql, as Prisma Migrate records it. */
  readonly checksum: string;
  readonly sql: string;
}

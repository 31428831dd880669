import type { Migration } from '../db.ts';
import { blobs } from './001-blobs.ts';

/** Ordered: index i upgrades version i to i + 1. Append only. */
export const MIGRATIONS: readonly Migration[] = [blobs];

import type { Migration } from '../db.ts';
import { blobs } from './001-blobs.ts';
import { tracking } from './002-tracking.ts';
import { registry } from './003-registry.ts';
import { playground } from './004-playground.ts';
import { downloads } from './005-downloads.ts';

/** Ordered: index i upgrades version i to i + 1. Append only. */
export const MIGRATIONS: readonly Migration[] = [blobs, tracking, registry, playground, downloads];

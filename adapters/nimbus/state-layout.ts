/**
 * What of a $NIMBUS_HOME must reach the standby head node, and how. Config trees and certificates change
 * rarely and are safe to copy file by file at any time; the repository is replicated through the S3 API;
 * the embedded databases (Derby, SQLite) are only consistent on disk while their service is stopped.
 */
import { join } from 'node:path';

export type NimbusStateKind = 'config' | 'certificates' | 'repository' | 'database';

/**
 * `file-sync`: replicate continuously as files (watch, batch, rename into place).
 * `object-store`: replicate through the repository sync (S3 API), not as files.
 * `quiesced-copy`: copy only while the owning service is stopped (quiesced); a copy of a live
 *   embedded database is torn and must never be shipped.
 */
export type NimbusSyncRule = 'file-sync' | 'object-store' | 'quiesced-copy';

export interface NimbusStateItem {
  kind: NimbusStateKind;
  /** Absolute path. */
  path: string;
  /** Path relative to NIMBUS_HOME. */
  relative: string;
  sync: NimbusSyncRule;
  /** Glob patterns (relative to path) left out of this item, because another item or nobody owns them. */
  exclude: string[];
  /** One sentence: what lives here. */
  description: string;
  /** For quiesced-copy items: the nimbusctl target that must be stopped first. */
  quiesce?: 'services' | 'cumulus';
}

export function nimbusStateLayout(home: string): NimbusStateItem[] {
  const item = (
    relative: string,
    kind: NimbusStateKind,
    sync: NimbusSyncRule,
    description: string,
    extra: { exclude?: string[]; quiesce?: 'services' | 'cumulus' } = {},
  ): NimbusStateItem => ({ kind, path: join(home, relative), relative, sync, exclude: extra.exclude ?? [], description, ...(extra.quiesce ? { quiesce: extra.quiesce } : {}) });

  return [
    item('services/etc/nimbus', 'config', 'file-sync', 'VM service configuration, network pools, authorization and VMM settings'),
    item('cumulus/etc', 'config', 'file-sync', 'Cumulus configuration (cumulus.ini)', { exclude: ['*.db', '*.db-journal'] }),
    item('var', 'certificates', 'file-sync', 'host certificate and key, keystore, certificate authority', {
      exclude: ['*.log', '*.pid', '*.lock'],
    }),
    item('cumulus/posixdata', 'repository', 'object-store', 'image files behind the Cumulus bucket Repo (VMS/<canonical id>/<image>, VMS/common/)'),
    item('services/var/nimbus', 'database', 'quiesced-copy', 'embedded databases (users, VMs, accounting) and lease files of the VM service', {
      quiesce: 'services',
    }),
    item('cumulus/etc/authz.db', 'database', 'quiesced-copy', 'Cumulus authorization database (users, buckets, object ACLs)', {
      quiesce: 'cumulus',
    }),
  ];
}

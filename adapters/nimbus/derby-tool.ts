/**
 * A few lines of Java run against Derby's embedded driver: boot a database copy and check every table
 * (the verification a standby copy must pass before it counts), run a DDL/SQL script, or print a query's
 * first column. The source is compiled once per source version with `javac` into a cache directory;
 * the classpath names the Derby jar (Debian's libderby-java, or the one a Nimbus install ships).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_DERBY_CLASSPATH = '/usr/share/java/derby.jar';

const SOURCE = String.raw`
import java.io.*;
import java.nio.file.*;
import java.sql.*;
import java.util.*;

public class NimbusDerbyTool {
  static String q(String s) { return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "\""; }

  static void shutdown(String db) {
    try { DriverManager.getConnection("jdbc:derby:" + db + ";shutdown=true"); }
    catch (SQLException e) { /* 08006: the database was shut down, as asked */ }
  }

  // Boots each database (crash recovery runs here); with tables, checks every user and system table and
  // counts rows, else only reads the catalog. One JSON line: {"ok":true,"databases":[...]} or ok false.
  static String checkJson(String[] dbs, boolean tables) {
    StringBuilder out = new StringBuilder("{\"ok\":true,\"databases\":[");
    boolean first = true;
    for (String db : dbs) {
      long t0 = System.nanoTime();
      try (Connection c = DriverManager.getConnection("jdbc:derby:" + db)) {
        List<String[]> found = new ArrayList<>();
        try (ResultSet rs = c.createStatement().executeQuery(
            "SELECT s.SCHEMANAME, t.TABLENAME, t.TABLETYPE FROM SYS.SYSTABLES t JOIN SYS.SYSSCHEMAS s ON t.SCHEMAID = s.SCHEMAID WHERE t.TABLETYPE IN ('T','S')")) {
          while (rs.next()) found.add(new String[] { rs.getString(1), rs.getString(2), rs.getString(3) });
        }
        StringBuilder tj = new StringBuilder();
        for (String[] t : tables ? found : new ArrayList<String[]>()) {
          try (PreparedStatement ps = c.prepareStatement("VALUES SYSCS_UTIL.SYSCS_CHECK_TABLE(?, ?)")) {
            ps.setString(1, t[0]); ps.setString(2, t[1]);
            try (ResultSet rs = ps.executeQuery()) {
              rs.next();
              if (rs.getInt(1) != 1) throw new SQLException("SYSCS_CHECK_TABLE failed for " + t[0] + "." + t[1], "XCHCK");
            }
          }
          if (t[2].equals("T")) {
            try (ResultSet rs = c.createStatement().executeQuery("SELECT COUNT(*) FROM \"" + t[0] + "\".\"" + t[1] + "\"")) {
              rs.next();
              if (tj.length() > 0) tj.append(',');
              tj.append(q(t[0] + "." + t[1])).append(':').append(rs.getLong(1));
            }
          }
        }
        if (!first) out.append(',');
        first = false;
        out.append("{\"path\":").append(q(db)).append(",\"tablesChecked\":").append(tables ? found.size() : 0)
           .append(",\"rows\":{").append(tj).append("},\"ms\":").append((System.nanoTime() - t0) / 1000000).append('}');
      } catch (SQLException e) {
        return "{\"ok\":false,\"path\":" + q(db) + ",\"error\":" + q(e.getSQLState() + " " + e.getMessage()) + "}";
      } finally {
        shutdown(db);
      }
    }
    return out.append("]}").toString();
  }

  static int check(String[] dbs) {
    String r = checkJson(dbs, true);
    System.out.println(r);
    return r.startsWith("{\"ok\":true") ? 0 : 2;
  }

  // A long-lived verifier: one request per stdin line ("boot" or "check", then database paths, tab
  // separated), one JSON line per answer. Saves the JVM start and Derby's class loading (about 1 s) per copy.
  static int serve() throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
    String line;
    while ((line = in.readLine()) != null) {
      String[] p = line.split("\t");
      String out;
      try {
        out = checkJson(Arrays.copyOfRange(p, 1, p.length), p[0].equals("check"));
      } catch (Throwable t) {
        out = "{\"ok\":false,\"error\":" + q(String.valueOf(t)) + "}";
      }
      System.out.println(out);
      System.out.flush();
    }
    return 0;
  }

  // Runs a script of statements separated by lines holding only ";" (creates the database if missing).
  static int script(String db, String file) throws Exception {
    String text = new String(Files.readAllBytes(Paths.get(file)), "UTF-8");
    try (Connection c = DriverManager.getConnection("jdbc:derby:" + db + ";create=true")) {
      for (String stmt : text.split("(?m)^;\\s*$")) {
        if (stmt.trim().isEmpty()) continue;
        c.createStatement().execute(stmt.trim());
      }
    } finally {
      shutdown(db);
    }
    return 0;
  }

  static int query(String db, String sql) throws Exception {
    try (Connection c = DriverManager.getConnection("jdbc:derby:" + db);
         ResultSet rs = c.createStatement().executeQuery(sql)) {
      while (rs.next()) System.out.println(rs.getString(1));
    } finally {
      shutdown(db);
    }
    return 0;
  }

  // Each transaction inserts one row into every table named, one database after the other (in the
  // order given), and prints "committed N" once all have committed: a copy taken at one instant holds
  // N in the first database and N or N-1 in each later one.
  static int writer(long pauseMs, long max, String[] spec) throws Exception {
    List<Connection> conns = new ArrayList<>();
    List<List<PreparedStatement>> ins = new ArrayList<>();
    long n = 0;
    for (int i = 0; i < spec.length; i += 2) {
      Connection c = DriverManager.getConnection("jdbc:derby:" + spec[i]);
      c.setAutoCommit(false);
      conns.add(c);
      List<PreparedStatement> l = new ArrayList<>();
      for (String t : spec[i + 1].split(",")) {
        l.add(c.prepareStatement("INSERT INTO \"" + t + "\" (SEQ, PAYLOAD) VALUES (?, ?)"));
        if (i == 0) try (ResultSet rs = c.createStatement().executeQuery("SELECT COALESCE(MAX(SEQ), 0) FROM \"" + t + "\"")) { rs.next(); n = Math.max(n, rs.getLong(1)); }
      }
      ins.add(l);
    }
    String pad = "x".repeat(200);
    while (max <= 0 || n < max) {
      n++;
      for (int i = 0; i < conns.size(); i++) {
        for (PreparedStatement ps : ins.get(i)) { ps.setLong(1, n); ps.setString(2, pad + n); ps.executeUpdate(); }
        conns.get(i).commit();
      }
      System.out.println("committed " + n);
      System.out.flush();
      if (pauseMs > 0) Thread.sleep(pauseMs);
    }
    for (Connection c : conns) c.close();
    return 0;
  }

  // Updates ROWS random rows (SEQ 1..MAXSEQ) of TABLE per transaction, pausing PAUSE_MS between
  // transactions, and prints "committed N" after each: pages changing in place all over the table.
  static int churn(long pauseMs, int rows, long maxSeq, String db, String table) throws Exception {
    Connection c = DriverManager.getConnection("jdbc:derby:" + db);
    c.setAutoCommit(false);
    PreparedStatement ps = c.prepareStatement("UPDATE \"" + table + "\" SET PAYLOAD = ? WHERE SEQ = ?");
    Random rnd = new Random();
    String pad = "y".repeat(180);
    for (long n = 1; ; n++) {
      for (int i = 0; i < rows; i++) { ps.setString(1, pad + n + ":" + i); ps.setLong(2, 1 + (long) (rnd.nextDouble() * maxSeq)); ps.executeUpdate(); }
      c.commit();
      System.out.println("committed " + n);
      System.out.flush();
      if (pauseMs > 0) Thread.sleep(pauseMs);
    }
  }

  public static void main(String[] a) throws Exception {
    int rc;
    switch (a[0]) {
      case "check": rc = check(Arrays.copyOfRange(a, 1, a.length)); break;
      case "serve": rc = serve(); break;
      case "script": rc = script(a[1], a[2]); break;
      case "query": rc = query(a[1], a[2]); break;
      case "writer": rc = writer(Long.parseLong(a[1]), Long.parseLong(a[2]), Arrays.copyOfRange(a, 3, a.length)); break;
      case "churn": rc = churn(Long.parseLong(a[1]), Integer.parseInt(a[2]), Long.parseLong(a[3]), a[4], a[5]); break;
      default: System.err.println("usage: check DB... | script DB FILE | query DB SQL | writer PAUSE_MS MAX DB T1,T2 [DB T3...] | churn PAUSE_MS ROWS MAXSEQ DB TABLE"); rc = 64;
    }
    System.exit(rc);
  }
}
`;

export interface DerbyToolOptions {
  /** Derby jar(s), colon-separated. */
  classpath?: string;
  /** `java` / `javac` executables (default from PATH). */
  java?: string;
  javac?: string;
  /** Where the compiled class is cached (default under the OS temp directory). */
  cacheDir?: string;
}

export interface DerbyCheckResult {
  ok: boolean;
  databases?: { path: string; tablesChecked: number; rows: Record<string, number>; ms: number }[];
  path?: string;
  error?: string;
}

const compiled = new Map<string, Promise<string>>();

function run(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export class DerbyTool {
  readonly classpath: string;
  private readonly java: string;
  private readonly javac: string;
  private readonly cacheDir: string;

  constructor(opts: DerbyToolOptions = {}) {
    this.classpath = opts.classpath ?? DEFAULT_DERBY_CLASSPATH;
    this.java = opts.java ?? 'java';
    this.javac = opts.javac ?? 'javac';
    this.cacheDir = opts.cacheDir ?? join(tmpdir(), 'nimbus-ha-derby-tool');
  }

  /** True when the Derby jar is present (the tests skip without it). */
  static available(classpath = DEFAULT_DERBY_CLASSPATH): boolean {
    return classpath.split(':').every((p) => existsSync(p));
  }

  /** Directory holding NimbusDerbyTool.class, compiled on first use. */
  private classDir(): Promise<string> {
    const key = createHash('sha256').update(SOURCE).update(this.classpath).digest('hex').slice(0, 16);
    const dir = join(this.cacheDir, key);
    let p = compiled.get(dir);
    if (!p) {
      p = (async () => {
        if (existsSync(join(dir, 'NimbusDerbyTool.class'))) return dir;
        const work = `${dir}.${process.pid}.${Date.now()}`;
        await mkdir(work, { recursive: true });
        await writeFile(join(work, 'NimbusDerbyTool.java'), SOURCE);
        const r = await run(this.javac, ['-nowarn', '-cp', this.classpath, '-d', work, join(work, 'NimbusDerbyTool.java')], { timeoutMs: 120_000 });
        if (r.code !== 0) {
          await rm(work, { recursive: true, force: true });
          throw new Error(`javac failed (is a JDK installed and ${this.classpath} present?): ${r.stderr.trim()}`);
        }
        await rename(work, dir).catch(async (err: NodeJS.ErrnoException) => {
          // Another process compiled it first.
          await rm(work, { recursive: true, force: true });
          if (!existsSync(join(dir, 'NimbusDerbyTool.class'))) throw err;
        });
        return dir;
      })();
      p.catch(() => compiled.delete(dir));
      compiled.set(dir, p);
    }
    return p;
  }

  /** The java command line for a tool mode (the writer fixture runs it as a long-lived child). */
  async command(args: string[]): Promise<{ cmd: string; args: string[] }> {
    const dir = await this.classDir();
    return {
      cmd: this.java,
      args: ['-Xss512k', '-XX:TieredStopAtLevel=1', '-Dderby.stream.error.field=java.lang.System.err', '-cp', `${dir}:${this.classpath}`, 'NimbusDerbyTool', ...args],
    };
  }

  /** Boots every database (crash recovery included) and runs SYSCS_CHECK_TABLE on each table. */
  async check(dbs: string[], timeoutMs = 120_000): Promise<DerbyCheckResult> {
    const c = await this.command(['check', ...dbs]);
    const r = await run(c.cmd, c.args, { timeoutMs });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as DerbyCheckResult;
    } catch {
      return { ok: false, error: `check exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-2000)}` };
    }
  }

  /** Runs a script (statements separated by lines holding only `;`), creating the database if missing. */
  async script(db: string, file: string): Promise<void> {
    const c = await this.command(['script', db, file]);
    const r = await run(c.cmd, c.args, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`derby script ${file} on ${db} failed: ${r.stderr.trim().slice(-2000)}`);
  }

  /** First column of every row of a query. */
  async query(db: string, sql: string): Promise<string[]> {
    const c = await this.command(['query', db, sql]);
    const r = await run(c.cmd, c.args, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`derby query on ${db} failed: ${r.stderr.trim().slice(-2000)}`);
    return r.stdout.split('\n').filter((l) => l.length > 0);
  }
}

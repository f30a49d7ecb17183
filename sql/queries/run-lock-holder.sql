-- Who holds the run lock: backend pid, client address, connected since. Parameters: classid, objid.
SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE l.locktype = 'advisory' AND l.classid = %(classid)s AND l.objid = %(objid)s AND l.granted LIMIT 1

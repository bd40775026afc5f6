-- ipsight fleet: the one-time PostgreSQL setup, run by a superuser (or a role with
-- CREATEROLE and CREATEDB) before the first `ipsight fleet migrate`:
--
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -v db=ipsight -f deploy/fleet/roles.sql
--
-- It is safe to run again. It creates three roles and the database:
--   ipsight_owner    LOGIN, not superuser: owns the database and its schema and runs
--                    the migrations (`ipsight fleet migrate` with this role in [fleet]).
--   ipsight_agent    NOLOGIN group: what every agent may do (insert and read
--                    observations, read models, claim alert deliveries, keep its own
--                    heartbeat row). The migrations grant it table by table.
--   ipsight_trainer  NOLOGIN group, member of ipsight_agent: also publishes models.
-- Each host then logs in with a role of its own in one group, so its rows carry its
-- role and its password can be revoked alone, for example:
--
--   CREATE ROLE ipsight_login1 LOGIN IN ROLE ipsight_agent;     -- may not train
--   CREATE ROLE ipsight_login2 LOGIN IN ROLE ipsight_trainer;   -- may train
--   \password ipsight_login2
--
-- and pg_hba.conf lets them in with scram-sha-256 over hostssl only (TLS verify-full
-- on the agents' side), for example:
--
--   hostssl  ipsight  +ipsight_agent  10.0.0.0/8  scram-sha-256
--   hostssl  ipsight  ipsight_owner   10.0.0.5/32 scram-sha-256

\if :{?db}
\else
\set db ipsight
\endif

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ipsight_owner') THEN
        CREATE ROLE ipsight_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ipsight_agent') THEN
        CREATE ROLE ipsight_agent NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ipsight_trainer') THEN
        CREATE ROLE ipsight_trainer NOLOGIN IN ROLE ipsight_agent;
    END IF;
END
$$;

SELECT format('CREATE DATABASE %I OWNER ipsight_owner ENCODING ''UTF8''', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec

-- Only the fleet's roles connect; PUBLIC (every role of the cluster) does not.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO ipsight_agent', :'db') \gexec

\connect :db
-- The owner owns the schema the migrations create tables in, so migrating never
-- needs a superuser; nobody else may create objects in it.
ALTER SCHEMA public OWNER TO ipsight_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

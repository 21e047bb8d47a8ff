-- Users: the SIP registrar's credential store and the provisioning API's subject.
-- Only digest HA1 hashes are kept (RFC 7616: H(username ":" realm ":" password)), never the
-- password. `realm` records which realm the hashes were computed for: after a change of
-- `sip.realm` they no longer verify, and the password must be set again.
-- Kept to portable SQL where cheap (PostgreSQL later: BIGINT identity instead of INTEGER
-- PRIMARY KEY).
CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    username     TEXT    NOT NULL UNIQUE,
    domain       TEXT    NULL,
    display_name TEXT    NOT NULL DEFAULT '',
    realm        TEXT    NOT NULL,
    ha1_md5      TEXT    NOT NULL,
    ha1_sha256   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE
);

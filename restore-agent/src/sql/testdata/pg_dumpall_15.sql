--
-- PostgreSQL database cluster dump
--

\restrict tpO6XIOeYnPO1eVDED55XUkvCJaoZQdEiMHA37RCm0JBL0qcQjtCeTZ0Fi3Cwk8

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Drop databases (except postgres and template1)
--

DROP DATABASE "odd;db ""q""";
DROP DATABASE shop;




--
-- Drop roles
--

DROP ROLE app;
DROP ROLE postgres;


--
-- Roles
--

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- User Configurations
--








\unrestrict tpO6XIOeYnPO1eVDED55XUkvCJaoZQdEiMHA37RCm0JBL0qcQjtCeTZ0Fi3Cwk8

--
-- Databases
--

--
-- Database "template1" dump
--

--
-- PostgreSQL database dump
--

\restrict FtbcxAovGjjAF5DoamzGRow0pwEZkaedgZ51g8Q0j0ruvzaEQ2bjh1Ad4GO5eDw

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

UPDATE pg_catalog.pg_database SET datistemplate = false WHERE datname = 'template1';
DROP DATABASE template1;
--
-- Name: template1; Type: DATABASE; Schema: -; Owner: postgres
--

CREATE DATABASE template1 WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE template1 OWNER TO postgres;

\unrestrict FtbcxAovGjjAF5DoamzGRow0pwEZkaedgZ51g8Q0j0ruvzaEQ2bjh1Ad4GO5eDw
\connect template1
\restrict FtbcxAovGjjAF5DoamzGRow0pwEZkaedgZ51g8Q0j0ruvzaEQ2bjh1Ad4GO5eDw

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: DATABASE template1; Type: COMMENT; Schema: -; Owner: postgres
--

COMMENT ON DATABASE template1 IS 'default template for new databases';


--
-- Name: template1; Type: DATABASE PROPERTIES; Schema: -; Owner: postgres
--

ALTER DATABASE template1 IS_TEMPLATE = true;


\unrestrict FtbcxAovGjjAF5DoamzGRow0pwEZkaedgZ51g8Q0j0ruvzaEQ2bjh1Ad4GO5eDw
\connect template1
\restrict FtbcxAovGjjAF5DoamzGRow0pwEZkaedgZ51g8Q0j0ruvzaEQ2bjh1Ad4GO5eDw

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: DATABASE template1; Type: ACL; Schema: -; Owner: postgres
--

REVOKE CONNECT,TEMPORARY ON DATABASE template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE template1 TO PUBLIC;


--
-- PostgreSQL database dump complete
--

\unrestrict FtbcxAovGjjAF5DoamzGRow0pwEZkaedgZ51g8Q0j0ruvzaEQ2bjh1Ad4GO5eDw

--
-- Database "odd;db "q"" dump
--

--
-- PostgreSQL database dump
--

\restrict nWtGhBzP3EpfRD0uV267vZNi93ztBzWiEEJNgg8heuf0yEo4b7ksC1hntcCSbOP

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: odd;db "q"; Type: DATABASE; Schema: -; Owner: app
--

CREATE DATABASE "odd;db ""q""" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE "odd;db ""q""" OWNER TO app;

\unrestrict nWtGhBzP3EpfRD0uV267vZNi93ztBzWiEEJNgg8heuf0yEo4b7ksC1hntcCSbOP
\encoding SQL_ASCII
\connect -reuse-previous=on "dbname='odd;db ""q""'"
\restrict nWtGhBzP3EpfRD0uV267vZNi93ztBzWiEEJNgg8heuf0yEo4b7ksC1hntcCSbOP

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: atomic_add(integer, integer); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.atomic_add(a integer, b integer) RETURNS integer
    LANGUAGE sql
    BEGIN ATOMIC
 SELECT
         CASE
             WHEN (a IS NULL) THEN 0
             ELSE (a + b)
         END AS "case";
END;


ALTER FUNCTION public.atomic_add(a integer, b integer) OWNER TO postgres;

--
-- Name: tricky(); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.tricky() RETURNS text
    LANGUAGE plpgsql
    AS $_$
BEGIN
  -- a comment; with semicolon
  RETURN E'\\.' || $$;$$ || ';';
END;
$_$;


ALTER FUNCTION public.tricky() OWNER TO postgres;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: log; Type: TABLE; Schema: public; Owner: app
--

CREATE TABLE public.log (
    msg text
);


ALTER TABLE public.log OWNER TO app;

--
-- Name: Ünïcode tbl; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public."Ünïcode tbl" (
    id integer NOT NULL,
    "col;x" text,
    note text
);


ALTER TABLE public."Ünïcode tbl" OWNER TO postgres;

--
-- Name: TABLE "Ünïcode tbl"; Type: COMMENT; Schema: public; Owner: postgres
--

COMMENT ON TABLE public."Ünïcode tbl" IS 'semi; colon and ''quote''';


--
-- Name: v; Type: VIEW; Schema: public; Owner: postgres
--

CREATE VIEW public.v AS
 SELECT "Ünïcode tbl".id,
    "Ünïcode tbl"."col;x"
   FROM public."Ünïcode tbl"
  WHERE ("Ünïcode tbl".note <> '/* not a comment */'::text);


ALTER TABLE public.v OWNER TO postgres;

--
-- Data for Name: log; Type: TABLE DATA; Schema: public; Owner: app
--

COPY public.log (msg) FROM stdin;
\\.

\\
x\\.
\\.\r
\.


--
-- Data for Name: Ünïcode tbl; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public."Ünïcode tbl" (id, "col;x", note) FROM stdin;
1	tab\there	back\\slash
2	new\nline	\N
3	\\.	\\.
4	it's	$$;
\.


--
-- Name: Ünïcode tbl Ünïcode tbl_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public."Ünïcode tbl"
    ADD CONSTRAINT "Ünïcode tbl_pkey" PRIMARY KEY (id);


--
-- Name: log no_delete; Type: RULE; Schema: public; Owner: app
--

CREATE RULE no_delete AS
    ON DELETE TO public.log DO INSTEAD ( INSERT INTO public.log (msg)
  VALUES ('a;b'::text);
 INSERT INTO public.log (msg)
  VALUES ('c'::text);
);


--
-- PostgreSQL database dump complete
--

\unrestrict nWtGhBzP3EpfRD0uV267vZNi93ztBzWiEEJNgg8heuf0yEo4b7ksC1hntcCSbOP

--
-- Database "postgres" dump
--

--
-- PostgreSQL database dump
--

\restrict 3Qy4zj79wwrc34cqx3QajolSmzYqgDxIqkOdgHKAfOhind2oOPGWRBmZDZmgYO7

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

DROP DATABASE postgres;
--
-- Name: postgres; Type: DATABASE; Schema: -; Owner: postgres
--

CREATE DATABASE postgres WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE postgres OWNER TO postgres;

\unrestrict 3Qy4zj79wwrc34cqx3QajolSmzYqgDxIqkOdgHKAfOhind2oOPGWRBmZDZmgYO7
\connect postgres
\restrict 3Qy4zj79wwrc34cqx3QajolSmzYqgDxIqkOdgHKAfOhind2oOPGWRBmZDZmgYO7

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: DATABASE postgres; Type: COMMENT; Schema: -; Owner: postgres
--

COMMENT ON DATABASE postgres IS 'default administrative connection database';


--
-- PostgreSQL database dump complete
--

\unrestrict 3Qy4zj79wwrc34cqx3QajolSmzYqgDxIqkOdgHKAfOhind2oOPGWRBmZDZmgYO7

--
-- Database "shop" dump
--

--
-- PostgreSQL database dump
--

\restrict YO6kXmKaeWGM4xwheJ8EsebRtQjN6vd9HyI2tF95oYX8cRVLZ4q3mAriRtId8v9

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: shop; Type: DATABASE; Schema: -; Owner: postgres
--

CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE shop OWNER TO postgres;

\unrestrict YO6kXmKaeWGM4xwheJ8EsebRtQjN6vd9HyI2tF95oYX8cRVLZ4q3mAriRtId8v9
\connect shop
\restrict YO6kXmKaeWGM4xwheJ8EsebRtQjN6vd9HyI2tF95oYX8cRVLZ4q3mAriRtId8v9

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: items; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.items (
    id integer NOT NULL,
    name text NOT NULL,
    price numeric(8,2)
);


ALTER TABLE public.items OWNER TO postgres;

--
-- Name: items_id_seq; Type: SEQUENCE; Schema: public; Owner: postgres
--

CREATE SEQUENCE public.items_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.items_id_seq OWNER TO postgres;

--
-- Name: items_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: postgres
--

ALTER SEQUENCE public.items_id_seq OWNED BY public.items.id;


--
-- Name: items id; Type: DEFAULT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.items ALTER COLUMN id SET DEFAULT nextval('public.items_id_seq'::regclass);


--
-- Data for Name: items; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.items (id, name, price) FROM stdin;
1	apple	1.20
2	pear	0.99
3	plum	\N
\.


--
-- Name: items_id_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('public.items_id_seq', 3, true);


--
-- Name: items items_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.items
    ADD CONSTRAINT items_pkey PRIMARY KEY (id);


--
-- Name: items_name; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX items_name ON public.items USING btree (name);


--
-- PostgreSQL database dump complete
--

\unrestrict YO6kXmKaeWGM4xwheJ8EsebRtQjN6vd9HyI2tF95oYX8cRVLZ4q3mAriRtId8v9

--
-- PostgreSQL database cluster dump complete
--


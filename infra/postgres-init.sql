-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d/):
-- POSTGRES_DB creates the MLflow database; this adds Prefect's, owned by the same role.
-- The Kubernetes manifests mount the same statements from a ConfigMap (infra/k8s/postgres.yaml).
CREATE DATABASE prefect OWNER coderanker;

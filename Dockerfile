# cdrbill's image for the Kubernetes deployment (deploy/README.md; built with buildah, no Docker daemon:
# docs/SCALE_LOG.md "The lake made operable"). The home (CDRBILL_HOME) is a mounted volume; the lake may be on
# S3 (lake_url).
FROM python:3.11-slim

# WeasyPrint renders invoices with Pango (the invoice font ships in templates/fonts)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/cdrbill
COPY pyproject.toml README.md LICENSE ./
COPY pipeline ./pipeline
COPY assets ./assets
COPY data_samples ./data_samples
COPY sql ./sql
COPY templates ./templates
COPY docs ./docs
# editable: the code reads templates/, sql/ and docs/ beside itself (pipeline/home.py PROJECT_ROOT).
# EXTRAS=s3 builds an image without the Kubernetes libraries (deploy: dagster-k8s, dagster-postgres, pinned with
# the dagster family in pyproject.toml; see deploy/README.md, "Docker")
ARG EXTRAS=deploy,s3
RUN pip install --no-cache-dir -e ".[${EXTRAS}]"

# fontconfig (WeasyPrint) needs a writable cache folder: the user has no home (else one error per font lookup)
ENV CDRBILL_HOME=/cdrbill XDG_CACHE_HOME=/tmp/.cache
RUN useradd --uid 1000 --no-create-home cdrbill
USER cdrbill
ENTRYPOINT ["cdrbill"]

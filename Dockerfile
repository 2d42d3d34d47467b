# ser_lightning in a container: CPU or GPU (the torch wheel from PyPI carries CUDA).
#   docker build -t ser_lightning .
#   docker run --rm -v /data/corpora:/corpora -v $PWD/runs:/app/runs ser_lightning \
#       fit --config configs/dense_highway.yaml
# Real corpora are mounted under /corpora and named with --data.init_args.root /corpora/<corpus>.
# Nothing is downloaded at run time: the embedded corpus is synthesised offline into /cache.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SER_LIGHTNING_CACHE=/cache \
    WANDB_MODE=offline \
    MPLBACKEND=Agg

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ser_lightning ./ser_lightning
COPY configs ./configs
RUN python -m pip install --upgrade pip && python -m pip install . \
    && mkdir -p /cache /corpora /app/runs

VOLUME ["/corpora", "/cache", "/app/runs"]
ENTRYPOINT ["python", "-m", "ser_lightning"]
CMD ["--help"]

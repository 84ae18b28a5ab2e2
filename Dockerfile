# mmteach in one container: the Streamlit app on port 8501 (see README, "Hosting a workshop").
#   docker build -t mmteach .
#   docker run --rm -p 8501:8501 mmteach          # one replica, http://localhost:8501
# Several replicas behind nginx: deploy/compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    # many small matrix operations: BLAS threads only add overhead (see mmteach/__main__.py)
    OPENBLAS_NUM_THREADS=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /app
# runtime requirements only: without requirements-sparse.txt (a C build against SuiteSparse)
# mmteach uses its dense Cholesky fallback
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app.py ./
COPY .streamlit ./.streamlit
COPY mmteach ./mmteach
COPY ui ./ui
COPY pages ./pages
COPY datasets ./datasets
COPY deploy/healthcheck.py ./deploy/

RUN useradd --create-home mmteach
USER mmteach
EXPOSE 8501
# healthy when the server answers; the first check also opens one session, which starts the
# warm-up of every page (ui/warm.py) before students arrive
HEALTHCHECK --interval=10s --timeout=90s --start-period=60s CMD python deploy/healthcheck.py
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]

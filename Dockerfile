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
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app.py ./
COPY .streamlit ./.streamlit
COPY mmteach ./mmteach
COPY ui ./ui
COPY pages ./pages
COPY datasets ./datasets

RUN useradd --create-home mmteach
USER mmteach
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]

//! Reports for imgclass: SVG plots, PNG galleries and self-contained HTML pages from evaluation results

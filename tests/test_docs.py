"""Every reference to the project's docs resolves inside the repository: the file exists and the
anchor is one of its headings (GitHub's slugs, which MkDocs' match), from docstrings, tools, configs,
README, the build files and docs; README stays short and every page is in the site's navigation.
The site itself is built by ``make docs`` (mkdocs --strict), not here."""
from __future__ import annotations

import os
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = osp.join(REPO, 'docs')
REF = re.compile(r'docs/((?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.md)(#[A-Za-z0-9_-]+)?')
LINK = re.compile(r'\]\(((?:\.\./|[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.md)?(#[A-Za-z0-9_-]+)?\)')
#: files outside the package that cite docs/ pages (build, packaging and environment files)
BUILD_FILES = ('README.md', 'pyproject.toml', 'Makefile', 'mkdocs.yml', 'requirements/constraints.txt',
               'requirements/oldest.txt')
README_MAX_LINES = 250


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(path: str) -> set[str]:
    with open(path, encoding='utf-8') as f:
        return {slug(line.lstrip('#')) for line in f if line.startswith('#')}


def sources():
    for sub in ('uqseg', 'tools', 'benchmarks', 'configs', 'tests'):
        for folder, _, files in os.walk(osp.join(REPO, sub)):
            yield from (osp.join(folder, f) for f in files if f.endswith(('.py', '.sh')))
    for name in BUILD_FILES:
        if osp.isfile(osp.join(REPO, name)):
            yield osp.join(REPO, name)


def pages() -> list[str]:
    """Every Markdown page of docs/, subfolders included, relative to docs/."""
    return sorted(osp.relpath(osp.join(folder, f), DOCS)
                  for folder, _, files in os.walk(DOCS) for f in files if f.endswith('.md'))


def test_slug_follows_github():
    assert slug(' Pixel metrics in mmseg') == 'pixel-metrics-in-mmseg'
    assert slug('uqseg/core') == 'uqsegcore'
    assert slug('DisMax and IsoMax+') == 'dismax-and-isomax'
    assert slug('Acc_val') == 'acc_val'


def test_docs_references_in_code_and_readme_resolve():
    bad, seen = [], 0
    for path in sources():
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for name, anchor in REF.findall(text):
            seen += 1
            target = osp.join(DOCS, name)
            if not osp.isfile(target):
                bad.append((osp.relpath(path, REPO), f'docs/{name}', 'no such file'))
            elif anchor and anchor[1:] not in anchors(target):
                bad.append((osp.relpath(path, REPO), f'docs/{name}{anchor}', 'no such heading'))
    assert seen > 10, 'the docstrings should cite docs/'
    assert not bad, bad


def test_links_between_docs_resolve():
    bad = []
    for name in pages():
        path = osp.join(DOCS, name)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for target, anchor in LINK.findall(text):
            file = osp.normpath(osp.join(osp.dirname(path), target)) if target else path
            if not osp.isfile(file):
                bad.append((name, target, 'no such file'))
            elif anchor and anchor[1:] not in anchors(file):
                bad.append((name, f'{target}{anchor}', 'no such heading'))
    assert not bad, bad


def test_readme_links_into_docs_resolve():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    links = re.findall(r'\]\((docs/[^)#\s]+)(#[A-Za-z0-9_-]+)?\)', text)
    assert len(links) > 5, 'README should link into docs/'
    bad = [(t + a, 'no such file') for t, a in links if not osp.exists(osp.join(REPO, t))]
    bad += [(t + a, 'no such heading') for t, a in links
            if a and osp.isfile(osp.join(REPO, t)) and a[1:] not in anchors(osp.join(REPO, t))]
    assert not bad, bad


def test_readme_is_short():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        n = sum(1 for _ in f)
    assert n <= README_MAX_LINES, f'README.md has {n} lines, at most {README_MAX_LINES}: move detail to docs/'


def test_every_page_is_in_the_site_navigation():
    with open(osp.join(REPO, 'mkdocs.yml'), encoding='utf-8') as f:
        nav = set(re.findall(r':\s*([A-Za-z0-9_/-]+\.md)\s*$', f.read(), flags=re.M))
    assert not set(pages()) - nav, f'pages missing from mkdocs.yml nav: {sorted(set(pages()) - nav)}'
    assert not nav - set(pages()), f'nav entries without a page: {sorted(nav - set(pages()))}'


def test_no_reference_to_a_spec_outside_the_repository():
    bad = [osp.relpath(p, REPO) for p in sources()
           if p != osp.abspath(__file__) and 'shared/specs' in open(p, encoding='utf-8').read()]
    assert not bad, f'cite docs/ instead of the external spec: {bad}'

"""Every reference to the project's docs resolves inside the repository: the file exists and the
anchor is one of its headings (GitHub's slugs), from docstrings, tools, configs, README and docs."""
from __future__ import annotations

import os
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REF = re.compile(r'docs/([A-Za-z0-9_-]+\.md)(#[A-Za-z0-9_-]+)?')
LINK = re.compile(r'\]\(([A-Za-z0-9_-]+\.md)?(#[A-Za-z0-9_-]+)?\)')


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
    yield osp.join(REPO, 'README.md')


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
            target = osp.join(REPO, 'docs', name)
            if not osp.isfile(target):
                bad.append((osp.relpath(path, REPO), f'docs/{name}', 'no such file'))
            elif anchor and anchor[1:] not in anchors(target):
                bad.append((osp.relpath(path, REPO), f'docs/{name}{anchor}', 'no such heading'))
    assert seen > 10, 'the docstrings should cite docs/'
    assert not bad, bad


def test_links_between_docs_resolve():
    bad = []
    folder = osp.join(REPO, 'docs')
    for name in os.listdir(folder):
        if not name.endswith('.md'):
            continue
        path = osp.join(folder, name)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for target, anchor in LINK.findall(text):
            file = osp.join(folder, target or name)
            if not osp.isfile(file):
                bad.append((name, target, 'no such file'))
            elif anchor and anchor[1:] not in anchors(file):
                bad.append((name, f'{target}{anchor}', 'no such heading'))
    assert not bad, bad


def test_no_reference_to_a_spec_outside_the_repository():
    bad = [osp.relpath(p, REPO) for p in sources()
           if p != osp.abspath(__file__) and 'shared/specs' in open(p, encoding='utf-8').read()]
    assert not bad, f'cite docs/ instead of the external spec: {bad}'
